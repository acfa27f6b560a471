//! The config reload of a running `edgecc run` over its real interfaces:
//! the file rewritten, SIGHUP or `POST /api/v1/admin/reload`, and the
//! effect seen over HTTP on 127.0.0.1.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::{edgecc, http_test_hash, HTTP_TEST_PASSWORD};

/// A config: queue `sales` (DNIS 100), agent `ann` (ext 1001) in it,
/// reason code `break` plus `extra_codes`, `extra_queues` appended as
/// TOML, users `ann` (agent) and `root` (admin), HTTP on 127.0.0.1:0.
fn config_text(extra_codes: &[&str], extra_queues: &str) -> String {
    let hash = http_test_hash();
    let codes: String = extra_codes
        .iter()
        .map(|c| format!("[[reason_codes]]\ncode = \"{c}\"\n"))
        .collect();
    format!(
        r#"
[site]
id = "reload"
[pbx]
kind = "sim"
[crm]
kind = "none"
[[reason_codes]]
code = "break"
{codes}
[[queues]]
id = "sales"
dnis = ["100"]
{extra_queues}
[[agents]]
id = "ann"
extension = "1001"
queues = ["sales"]
[http]
listen = "127.0.0.1:0"
[[users]]
id = "ann"
role = "agent"
password_hash = "{hash}"
[[users]]
id = "root"
role = "admin"
password_hash = "{hash}"
"#
    )
}

/// `edgecc run` on `dir` with `config`, JSON logs in `dir/log`.
struct Running {
    /// The process (killed when dropped).
    child: Child,
    /// Where HTTP listens.
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(dir: &Path, config: &Path) -> Running {
        let log = dir.join("log");
        let socket = dir.join("admin.sock");
        let mut child = edgecc()
            .env("EDGECC_LOG", "info")
            .env("EDGECC_LOG_FORMAT", "json")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--admin-socket")
            .arg(&socket)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn edgecc run");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            assert!(child.try_wait().expect("wait").is_none(), "daemon exited");
            std::thread::sleep(Duration::from_millis(20));
        }
        let addr = std::fs::read_to_string(&log)
            .expect("read log")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "HTTP listening.")
            .and_then(|l| l["addr"].as_str().map(str::to_owned))
            .expect("HTTP address in the log");
        Running { child, addr }
    }

    /// `method path` with an optional bearer token and JSON body; answers
    /// the status and the JSON body (Null if none).
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("write");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read");
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn login(&self, user: &str) -> String {
        let (status, v) = self.send(
            "POST",
            "/api/v1/session",
            None,
            Some(json!({"agent_id": user, "password": HTTP_TEST_PASSWORD})),
        );
        assert_eq!(status, 200, "login {user}: {v}");
        v["token"].as_str().expect("token").to_owned()
    }

    fn hangup_signal(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
    }
}

/// Issue 18's regression: a reason code added by a reload (SIGHUP) is
/// accepted by the agent (it was refused with 409: the agent checked codes
/// against the start-up config). Method: ann logs in; the file gains
/// `training`; SIGHUP; once `GET /reason_codes` lists it (HTTP applies
/// last), ann goes Not Ready with it.
#[test]
fn a_reason_code_added_by_sighup_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, config_text(&[], "")).expect("config");
    let d = Running::start(dir.path(), &config);
    let ann = d.login("ann");
    let (s, v) = d.send(
        "POST",
        "/api/v1/agent/state",
        Some(&ann),
        Some(json!({"state": "login"})),
    );
    assert_eq!(s, 200, "{v}");

    std::fs::write(&config, config_text(&["training"], "")).expect("config");
    d.hangup_signal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = d.send("GET", "/api/v1/reason_codes", Some(&ann), None);
        if v["reason_codes"].to_string().contains("training") {
            break;
        }
        assert!(Instant::now() < deadline, "the reload never applied: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (s, v) = d.send(
        "POST",
        "/api/v1/agent/state",
        Some(&ann),
        Some(json!({"state": "not_ready", "reason_code": "training"})),
    );
    assert_eq!(s, 200, "{v}");
}

/// The reload API applies queues and refuses a bad file as a whole. Method:
/// the file gains queue `support` and code `training`; `POST
/// /admin/reload` answers what changed and `GET /queues` lists `support`;
/// then a file with a zero max wait and another new code is refused (422,
/// naming the file and `queues[0].max_wait_ms`) and nothing of it applies.
#[test]
fn the_reload_api_applies_queues_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, config_text(&[], "")).expect("config");
    let d = Running::start(dir.path(), &config);
    let root = d.login("root");

    let support = "[[queues]]\nid = \"support\"\ndnis = [\"200\"]\nstrategy = \"round-robin\"\n";
    std::fs::write(&config, config_text(&["training"], support)).expect("config");
    let (s, v) = d.send("POST", "/api/v1/admin/reload", Some(&root), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changes"]["queues_added"], json!(["support"]), "{v}");
    let (s, v) = d.send("GET", "/api/v1/queues", Some(&root), None);
    assert_eq!(s, 200, "{v}");
    let ids: Vec<&str> = v["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter_map(|q| q["queue_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["sales", "support"], "{v}");

    let bad = config_text(&["training", "coaching"], support)
        .replace("dnis = [\"100\"]", "dnis = [\"100\"]\nmax_wait_ms = 0");
    std::fs::write(&config, bad).expect("config");
    let (s, v) = d.send("POST", "/api/v1/admin/reload", Some(&root), None);
    assert_eq!(s, 422, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("edgecc.toml") && message.contains("queues[0].max_wait_ms"),
        "{v}"
    );
    let (_, v) = d.send("GET", "/api/v1/reason_codes", Some(&root), None);
    assert!(!v.to_string().contains("coaching"), "{v}");
}

/// `[reports]` applies at a reload (issue 19): the wallboard's figures
/// count with the new per-queue threshold and short-abandon threshold at
/// once. Method: `GET /reports/wallboard` before (the 20 s and 5 s
/// defaults), the file gains `[reports]`, `POST /admin/reload`, the same
/// request after.
#[test]
fn the_reload_applies_report_thresholds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, config_text(&[], "")).expect("config");
    let d = Running::start(dir.path(), &config);
    let root = d.login("root");
    let thresholds = |d: &Running| -> (Value, Value) {
        let (s, v) = d.send("GET", "/api/v1/reports/wallboard", Some(&root), None);
        assert_eq!(s, 200, "{v}");
        let sales = v["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["queue"] == "sales"))
            .map(|q| q["service_level_threshold_ms"].clone())
            .unwrap_or(Value::Null);
        (sales, v["short_abandon_ms"].clone())
    };
    assert_eq!(thresholds(&d), (json!(20_000), json!(5_000)));

    let reports =
        "\n[reports]\nshort_abandon_ms = 1500\n[reports.queues.sales]\nservice_level_ms = 45000\n";
    std::fs::write(&config, config_text(&[], "") + reports).expect("config");
    let (s, v) = d.send("POST", "/api/v1/admin/reload", Some(&root), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(thresholds(&d), (json!(45_000), json!(1_500)));
}
