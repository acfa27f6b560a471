//! The daemon as a child process of `edgecc demo --restart-at`: its
//! config file (written by the demo: the ARI adapter pointed at the
//! demo's simulated PBX, the webhook CRM at the demo's CRM emulator, HTTP
//! on a fixed loopback port so it stays the same across restarts), its
//! start (`edgecc run` on the demo's data directory), its readiness
//! (`/readyz`), what it says in `/metrics`, agent logins over its API, and
//! its end: SIGKILL, or SIGTERM for the clean stop at the end of the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecc_actors::ContactCenterConfig;

/// How long one request to the daemon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often readiness is polled while the daemon starts.
const READY_POLL: Duration = Duration::from_millis(10);
/// The password of every demo user (agents); only on 127.0.0.1.
pub const AGENT_PASSWORD: &str = "demo-agent";

/// What the child's config file is written from.
pub struct ChildConfig<'a> {
    /// The contact center (queues, agents, timers).
    pub cc: &'a ContactCenterConfig,
    /// The PBX: ARI base URL (`http://127.0.0.1:PORT/ari`).
    pub ari_url: String,
    /// The ARI user and password.
    pub ari_user: (String, String),
    /// The CRM webhook URL.
    pub crm_url: String,
    /// The HTTP listener (`127.0.0.1:PORT`).
    pub http: std::net::SocketAddr,
    /// Argon2 hash of [`AGENT_PASSWORD`], for every agent's user.
    pub password_hash: String,
}

/// Writes the config file (and the secret files it names) into `dir`;
/// answers the config file's path.
pub fn write_config(dir: &Path, c: &ChildConfig<'_>) -> Result<PathBuf, String> {
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let ari_password = write("demo-ari-password", &c.ari_user.1)?;
    let webhook_secret = write("demo-webhook-secret", super::DEMO_SECRET)?;
    let q = |s: &str| toml_string(s);
    let mut t = String::new();
    let _ = writeln!(t, "[site]\nid = {}\n", q(&c.cc.site_id));
    let _ = writeln!(t, "[pbx]\nkind = \"ari\"\n[pbx.ari]");
    let _ = writeln!(t, "url = {}", q(&c.ari_url));
    let _ = writeln!(t, "user = {}", q(&c.ari_user.0));
    let _ = writeln!(
        t,
        "password_file = {}",
        q(&ari_password.display().to_string())
    );
    // A cut link comes back within a second.
    let _ = writeln!(
        t,
        "reconnect_backoff_base_ms = 100\nreconnect_backoff_cap_ms = 1000\n"
    );
    let _ = writeln!(
        t,
        "[crm]\nkind = \"webhook\"\nbreaker_probe_interval_ms = 1000\nbackoff_cap_ms = 5000"
    );
    let _ = writeln!(t, "[crm.webhook]\nurl = {}", q(&c.crm_url));
    let _ = writeln!(
        t,
        "secret_file = {}\nconnect_timeout_ms = 1000\nrequest_timeout_ms = 3000\n",
        q(&webhook_secret.display().to_string())
    );
    let timers = &c.cc.timers;
    let _ = writeln!(
        t,
        "[timers]\noffer_timeout_ms = {}\nreject_delay_ms = {}\nrona_sets_not_ready = {}\n",
        timers.offer_timeout_ms, timers.reject_delay_ms, timers.rona_sets_not_ready
    );
    for queue in &c.cc.queues {
        let strategy = serde_json::to_value(queue.strategy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or("demo: a queue strategy has no name")?;
        let _ = writeln!(
            t,
            "[[queues]]\nid = {}\nname = {}",
            q(&queue.id),
            q(&queue.name)
        );
        let dnis: Vec<String> = queue.dnis.iter().map(|d| q(d)).collect();
        let _ = writeln!(
            t,
            "dnis = [{}]\nstrategy = {}",
            dnis.join(", "),
            q(&strategy)
        );
        let _ = writeln!(
            t,
            "max_wait_ms = {}\nwrap_up_ms = {}\nfinal_destination = {{ kind = \"announcement\", prompt = \"callback-offered\" }}\n",
            queue.max_wait_ms, queue.wrap_up_ms
        );
    }
    for agent in &c.cc.agents {
        let queues: Vec<String> = agent.queues.iter().map(|s| q(s)).collect();
        let _ = writeln!(
            t,
            "[[agents]]\nid = {}\nname = {}\nextension = {}\nendpoint = {}\nqueues = [{}]\n",
            q(&agent.id),
            q(&agent.name),
            q(&agent.extension),
            q(&agent.endpoint()),
            queues.join(", ")
        );
    }
    let _ = writeln!(t, "[http]\nlisten = {}\n", q(&c.http.to_string()));
    for agent in &c.cc.agents {
        let _ = writeln!(
            t,
            "[[users]]\nid = {}\nrole = \"agent\"\npassword_hash = {}\n",
            q(&agent.id),
            q(&c.password_hash)
        );
    }
    write("demo-edgecc.toml", &t)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    // JSON string escapes are valid TOML basic-string escapes.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The running daemon.
pub struct Daemon {
    /// The process.
    child: Child,
    /// When it was spawned.
    pub spawned: Instant,
}

/// How to start the daemon: the binary, its files.
#[derive(Clone)]
pub struct Launch {
    /// This binary (`edgecc`).
    pub exe: PathBuf,
    /// The config file [`write_config`] wrote.
    pub config: PathBuf,
    /// The data directory, the same for every life.
    pub data_dir: PathBuf,
    /// Where its log lines go (appended, every life).
    pub log: PathBuf,
}

impl Launch {
    /// Starts `edgecc run` (its output appended to the log file).
    pub fn spawn(&self) -> Result<Daemon, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let child = Command::new(&self.exe)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--admin-socket")
            .arg(self.data_dir.join("admin.sock"))
            .arg("run")
            // The demo's daemon is not the service systemd watches.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            // Its log goes to a file: no colour codes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        Ok(Daemon {
            child,
            spawned: Instant::now(),
        })
    }
}

/// A daemon left running when the demo returns early (an error on the
/// way) is killed, so it does not outlive the demo.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    /// SIGKILL, as the OOM killer or a power cut would; waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (the clean stop) and waits up to `wait`; SIGKILL after it.
    /// Answers whether it stopped cleanly.
    pub async fn stop(mut self, wait: Duration) -> bool {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, which we have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Talks to the daemon's HTTP API on 127.0.0.1.
#[derive(Clone)]
pub struct Api {
    /// The client.
    client: awc::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Api {
    /// A client for the daemon listening on `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            client: awc::Client::builder().timeout(REQUEST_TIMEOUT).finish(),
            base: format!("http://{addr}"),
        }
    }

    /// Waits until `/readyz` answers 200 (PBX link up, storage taking
    /// writes) and, with `restored`, until `/metrics` reports the restart's
    /// reconcile with the PBX; at most `wait` from `spawned`.
    pub async fn wait_ready(
        &self,
        spawned: Instant,
        wait: Duration,
        restored: bool,
    ) -> Result<Readiness, String> {
        let until = spawned + wait;
        let mut out = Readiness::default();
        loop {
            if out.ready.is_none() {
                let ok = self
                    .client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false);
                if ok {
                    out.ready = Some(spawned.elapsed());
                }
            }
            if out.ready.is_some() {
                if !restored {
                    return Ok(out);
                }
                let scrape = self.metrics().await.unwrap_or_default();
                if let (Some(r), Some(a)) = (
                    metric(&scrape, "edgecc_restart_calls_restored"),
                    metric(&scrape, "edgecc_restart_calls_adopted"),
                ) {
                    out.reconciled = Some(spawned.elapsed());
                    out.calls_restored = r as u64;
                    out.calls_adopted = a as u64;
                    return Ok(out);
                }
            }
            if Instant::now() >= until {
                return Err(format!(
                    "the daemon was not {} {} s after its start",
                    if out.ready.is_none() {
                        "ready"
                    } else {
                        "reconciled"
                    },
                    wait.as_secs()
                ));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// One scrape of `/metrics`: `name{labels} value` lines as
    /// (name with labels, value).
    pub async fn metrics(&self) -> Result<Vec<(String, f64)>, String> {
        let mut r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| format!("metrics: {e}"))?;
        let body = r.body().await.map_err(|e| format!("metrics: {e}"))?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect())
    }

    /// Logs `agent` in and makes it Ready (its own session, as a desktop).
    pub async fn agent_ready(&self, agent: &str) -> Result<(), String> {
        let mut r = self
            .client
            .post(format!("{}/api/v1/session", self.base))
            .send_json(&serde_json::json!({"agent_id": agent, "password": AGENT_PASSWORD}))
            .await
            .map_err(|e| format!("login of {agent}: {e}"))?;
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| format!("login of {agent}: {e}"))?;
        let token = body["token"]
            .as_str()
            .ok_or_else(|| format!("login of {agent} refused: {body}"))?
            .to_string();
        for state in ["login", "ready"] {
            let r = self
                .client
                .post(format!("{}/api/v1/agent/state", self.base))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send_json(&serde_json::json!({ "state": state }))
                .await
                .map_err(|e| format!("{agent} {state}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("{agent} {state}: HTTP {}", r.status()));
            }
        }
        Ok(())
    }
}

/// How a start went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readiness {
    /// Spawn to `/readyz` 200.
    pub ready: Option<Duration>,
    /// Spawn to the restored calls reconciled with the PBX.
    pub reconciled: Option<Duration>,
    /// Live calls restored from the saved state.
    pub calls_restored: u64,
    /// Of those, calls the PBX still had (re-adopted).
    pub calls_adopted: u64,
}

/// The value of metric `name` (no labels) in a scrape.
pub fn metric(scrape: &[(String, f64)], name: &str) -> Option<f64> {
    scrape.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// A free port on 127.0.0.1 (bound, then let go) for the daemon's HTTP,
/// which must stay the same across restarts.
pub fn free_port() -> Result<std::net::SocketAddr, String> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr()
        .map_err(|e| format!("cannot find a free port: {e}"))
}
