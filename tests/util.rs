//! Helpers: run the `edgecc` binary, start a daemon on a temporary data
//! directory and stop it again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn edgecc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgecc"));
    c.env_remove("STATE_DIRECTORY")
        .env_remove("RUNTIME_DIRECTORY")
        // Tests run under a service manager must not talk to it.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("EDGECC_LOG", "warn");
    c
}

/// Runs `edgecc args…` to completion.
pub fn run(args: &[&str]) -> Output {
    edgecc().args(args).output().expect("run edgecc")
}

/// Stdout of a command as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a command as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A daemon running on its own temporary directory; killed when dropped.
pub struct Daemon {
    /// The process.
    child: Child,
    /// Holds the data directory and the socket.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `edgecc run` on `dir` and waits until its admin socket answers.
    pub fn start_in(dir: tempfile::TempDir) -> Daemon {
        // Port 0: tests run side by side, so no fixed HTTP port.
        let config = dir.path().join("edgecc.toml");
        std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").expect("write config");
        let child = edgecc()
            .arg("--config")
            .arg(&config)
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--admin-socket")
            .arg(dir.path().join("admin.sock"))
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn edgecc run");
        let mut daemon = Daemon { child, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        while std::os::unix::net::UnixStream::connect(daemon.socket()).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("daemon exited during start-up with {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The admin socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Runs `edgecc --data-dir D --admin-socket S args…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_on(&self.data_dir(), &self.socket(), args)
    }

    /// Sends SIGTERM and waits for a clean exit; gives back the directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for daemon");
        assert!(status.success(), "daemon exited with {status}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `edgecc --data-dir D --admin-socket S args…`.
pub fn cli_on(data_dir: &Path, socket: &Path, args: &[&str]) -> Output {
    edgecc()
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--admin-socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run edgecc")
}

/// The password of every user in [`http_config`].
pub const HTTP_TEST_PASSWORD: &str = "correct horse battery";

/// One argon2 hash of [`HTTP_TEST_PASSWORD`], made once per test binary.
pub fn http_test_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| edgecc::http::hash_password(HTTP_TEST_PASSWORD).expect("hash"))
}

/// A config with agents `ann` (ext 1001) and `bob` (1002) in queue `sales`
/// (DNIS +18005550100), reason codes `break` and `lunch`, users `ann`,
/// `bob` (agents), `sue` (supervisor), `root` (admin), and HTTP on
/// 127.0.0.1:0.
pub fn http_config(token_ttl_ms: u64, desktop_grace_ms: u64) -> edgecc::config::Config {
    let hash = http_test_hash();
    let text = format!(
        r#"
[site]
id = "test"
[pbx]
kind = "sim"
[crm]
kind = "none"
[timers]
offer_timeout_ms = 120000
reject_delay_ms = 0
rona_sets_not_ready = true
[[reason_codes]]
code = "break"
label = "Break"
[[reason_codes]]
code = "lunch"
label = "Lunch"
[[queues]]
id = "sales"
name = "Sales"
dnis = ["+18005550100"]
wrap_up_ms = 600000
[[agents]]
id = "ann"
extension = "1001"
queues = ["sales"]
[[agents]]
id = "bob"
extension = "1002"
queues = ["sales"]
[http]
listen = "127.0.0.1:0"
token_ttl_ms = 3600000
desktop_grace_ms = 3600000
[[users]]
id = "ann"
role = "agent"
password_hash = "{hash}"
[[users]]
id = "bob"
role = "agent"
password_hash = "{hash}"
[[users]]
id = "sue"
role = "supervisor"
password_hash = "{hash}"
endpoint = "sim/sue"
[[users]]
id = "root"
role = "admin"
password_hash = "{hash}"
"#
    );
    let mut config =
        edgecc::config::Config::parse(&text, Path::new("http-test.toml")).expect("test config");
    // Below the file's minimums, for the expiry and grace tests.
    config.http.token_ttl_ms = token_ttl_ms;
    config.http.desktop_grace_ms = desktop_grace_ms;
    config
}

/// The whole system plus the HTTP server, on a temporary data directory,
/// inside the current actix system, assembled as `edgecc run` assembles it
/// ([`edgecc::system::SystemParts`]) without the admin socket.
pub struct HttpTest {
    /// The HTTP server.
    pub http: edgecc::http::HttpHandle,
    /// The actors (registry, simulated PBX).
    pub running: edgecc::system::Running,
    /// The storage.
    pub storage: edgecc_storage::Storage,
    /// Keeps the data directory alive.
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl HttpTest {
    /// Starts everything with `config`.
    pub async fn start(config: edgecc::config::Config) -> HttpTest {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = edgecc::system::storage::open_storage(&config, &dir.path().join("data"))
            .expect("storage");
        let reload: edgecc::http::ReloadHook = std::rc::Rc::new(|| {
            Box::pin(async {
                Err(edgecc::http::ReloadError::Refused(
                    edgecc::config::ConfigError {
                        file: "test.toml".into(),
                        key: String::new(),
                        message: "test: refused".into(),
                    },
                ))
            })
        });
        let edgecc::system::System {
            running,
            storage,
            http,
            ..
        } = edgecc::system::SystemParts::new(config, storage)
            .serve_http(Some(reload))
            .start()
            .await
            .expect("system");
        let http = http.expect("http");
        let base = format!("http://{}", http.local_addr);
        HttpTest {
            http,
            running,
            storage,
            _dir: dir,
            base,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An HTTP client with a bounded timeout.
    pub fn client(&self) -> awc::Client {
        awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish()
    }

    /// Logs `user` in; answers the token.
    pub async fn login(&self, user: &str) -> String {
        let mut res = self
            .client()
            .post(self.url("/api/v1/session"))
            .send_json(&serde_json::json!({"agent_id": user, "password": HTTP_TEST_PASSWORD}))
            .await
            .expect("login request");
        assert_eq!(res.status().as_u16(), 200, "login {user}");
        let v: serde_json::Value = res.json().await.expect("login json");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Sends `method path` with `token` and an optional JSON body; answers
    /// status and JSON (Null when the body is empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client().request(method, self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        };
        let mut res = res.expect("request");
        let status = res.status().as_u16();
        let bytes = res.body().limit(4 * 1024 * 1024).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Places a call from `ani` to the sales queue; answers its id.
    pub async fn place_call(&self, ani: &str) -> String {
        let sim = self.running.sim.as_ref().expect("sim");
        let leg = sim
            .send(edgecc_actors::sim::PlaceCall(
                edgecc_actors::sim::Caller::new(ani, "+18005550100"),
            ))
            .await
            .expect("place call");
        leg.call_id().0
    }

    /// Makes the phone of extension `ext` ring without answering the next
    /// `n` offers (so the desktop's Accept answers them).
    pub async fn phone_rings(&self, ext: &str, n: usize) {
        let sim = self.running.sim.as_ref().expect("sim");
        sim.send(edgecc_actors::sim::ScriptPhone {
            endpoint: format!("sim/{ext}"),
            actions: vec![edgecc_actors::sim::PhoneAction::NoAnswer; n],
        })
        .await
        .expect("script phone");
    }

    /// Polls `GET /api/v1/me` as `token` until `pred` holds (bounded).
    pub async fn wait_me(
        &self,
        token: &str,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = self.call("GET", "/api/v1/me", Some(token), None).await;
            if status == 200 && pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// `GET path` on `addr` over plain HTTP/1.1 (one connection, closed after
/// the answer); answers status and body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
