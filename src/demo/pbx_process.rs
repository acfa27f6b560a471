//! The simulated PBX of `edgecc demo --restart-at` as a process of its
//! own: `edgecc pbx-emulator` spawned by the demo (ARI and its control API
//! on 127.0.0.1, the agents' phones given on its command line), talked to
//! over its control and status API ([`crate::ari_emulator::control`]), and
//! ended on every exit path: killed and reaped when its handle is dropped,
//! and gone by itself when the demo's end of its standard input closes
//! (the demo killed however it is killed).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ari_emulator::control::{CallRequest, LinkCut, Status};
use crate::ari_emulator::serve::phone_arg;
use crate::ari_emulator::{AriEmulatorConfig, EndpointBehaviour};

/// How long the PBX may take to print its URLs.
const START_WAIT: Duration = Duration::from_secs(20);
/// How long one control request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The running PBX process; killed and reaped when dropped.
pub struct PbxProcess {
    /// The process (its standard input is the demo's pipe).
    child: Child,
    /// Its ARI base URL (`http://127.0.0.1:PORT/ari`), for the daemon.
    pub ari_url: String,
    /// Its control API's base URL (`http://127.0.0.1:PORT/emulator`).
    control_url: String,
    /// The ARI user and password (also the control API's).
    pub credentials: (String, String),
    /// The control API client.
    client: awc::Client,
}

impl Drop for PbxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PbxProcess {
    /// Starts `exe pbx-emulator` with these phones (its log lines appended
    /// to `log`) and waits for it to print its two URLs.
    pub fn spawn(
        exe: &Path,
        phones: &[(String, EndpointBehaviour)],
        log: &Path,
    ) -> Result<PbxProcess, String> {
        let mut specs = Vec::with_capacity(phones.len());
        for (endpoint, b) in phones {
            specs.push(
                phone_arg(endpoint, b)
                    .ok_or_else(|| format!("demo: phone {endpoint}: {b:?} has no flag"))?,
            );
        }
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["pbx-emulator", "--port", "0", "--control-port", "0"])
            .arg("--until-stdin-closes");
        if !specs.is_empty() {
            cmd.arg("--phones").arg(specs.join(","));
        }
        let mut child = cmd
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the PBX ({}): {e}", exe.display()))?;
        // Its two lines, read on a thread so a PBX that never prints them
        // cannot hold the demo.
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            if let Some(out) = stdout {
                let mut reader = BufReader::new(out);
                for _ in 0..2 {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(n) if n > 0 => lines.push(line.trim().to_string()),
                        _ => break,
                    }
                }
            }
            let _ = tx.send(lines);
        });
        let cfg = AriEmulatorConfig::default();
        let mut pbx = PbxProcess {
            child,
            ari_url: String::new(),
            control_url: String::new(),
            credentials: (cfg.user, cfg.password),
            client: awc::Client::builder().timeout(REQUEST_TIMEOUT).finish(),
        };
        let lines = rx.recv_timeout(START_WAIT).unwrap_or_default();
        match lines.as_slice() {
            [ari, control] if ari.starts_with("http://127.0.0.1:") => {
                pbx.ari_url = ari.clone();
                pbx.control_url = control.clone();
                Ok(pbx)
            }
            // `pbx` is dropped here: the process is killed and reaped.
            other => Err(format!(
                "the PBX process did not start (it printed {other:?}); see {}",
                log.display()
            )),
        }
    }

    /// The PBX process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `GET /emulator/status`.
    pub async fn status(&self) -> Result<Status, String> {
        let mut r = self
            .client
            .get(format!("{}/status", self.control_url))
            .basic_auth(&self.credentials.0, &self.credentials.1)
            .send()
            .await
            .map_err(|e| format!("PBX status: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("PBX status: HTTP {}", r.status()));
        }
        r.json::<Status>()
            .limit(64 * 1024 * 1024)
            .await
            .map_err(|e| format!("PBX status: {e}"))
    }

    /// A caller dials `dnis`: the channel id edgecc will know the call by,
    /// or `None` when no daemon holds the application (the call is not
    /// taken).
    pub async fn place_call(&self, ani: &str, dnis: &str) -> Result<Option<String>, String> {
        let mut r = self
            .client
            .post(format!("{}/calls", self.control_url))
            .basic_auth(&self.credentials.0, &self.credentials.1)
            .send_json(&CallRequest {
                ani: ani.to_string(),
                dnis: dnis.to_string(),
                name: None,
            })
            .await
            .map_err(|e| format!("PBX call: {e}"))?;
        match r.status().as_u16() {
            200 => {
                let v: serde_json::Value = r.json().await.map_err(|e| format!("PBX call: {e}"))?;
                v["id"]
                    .as_str()
                    .map(|id| Some(id.to_string()))
                    .ok_or_else(|| format!("PBX call: no id in {v}"))
            }
            503 => Ok(None),
            s => Err(format!("PBX call: HTTP {s}")),
        }
    }

    /// The caller on `id` hangs up; false when the PBX has no such channel.
    pub async fn hang_up(&self, id: &str) -> Result<bool, String> {
        let r = self
            .client
            .post(format!("{}/calls/{id}/hangup", self.control_url))
            .basic_auth(&self.credentials.0, &self.credentials.1)
            .send()
            .await
            .map_err(|e| format!("PBX hang-up: {e}"))?;
        Ok(r.status().is_success())
    }

    /// Cuts the ARI link: closed, new ones refused for `for_`.
    pub async fn cut_link(&self, for_: Duration) -> Result<(), String> {
        let r = self
            .client
            .post(format!("{}/link-cut", self.control_url))
            .basic_auth(&self.credentials.0, &self.credentials.1)
            .send_json(&LinkCut {
                ms: for_.as_millis() as u64,
            })
            .await
            .map_err(|e| format!("PBX link cut: {e}"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("PBX link cut: HTTP {}", r.status()))
        }
    }
}
