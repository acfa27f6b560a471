//! `Type=notify` against the real daemon binary, with a fake
//! `NOTIFY_SOCKET` (a unix datagram socket in a temporary directory) in
//! place of systemd: READY=1 only once the daemon serves, WATCHDOG=1 that
//! keeps coming while the actors answer and stops when they are wedged,
//! STATUS= lines in their documented format, STOPPING=1 and exit 0 on
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{edgecc, http_get};

/// Most time any one step may take (start-up, a notification, shutdown).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The fake systemd end: the socket and the daemon's stderr lines.
struct Supervised {
    child: Child,
    socket: UnixDatagram,
    stderr: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Supervised {
    /// Starts `edgecc run` with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set and
    /// JSON logs on stderr (collected on a thread).
    fn start(watchdog_usec: u64, extra_env: &[(&str, &str)]) -> Supervised {
        let dir = tempfile::tempdir().expect("tempdir");
        let notify = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&notify).expect("bind notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let config = dir.path().join("edgecc.toml");
        std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").expect("config");
        let mut cmd = edgecc();
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--admin-socket")
            .arg(dir.path().join("admin.sock"))
            .arg("run")
            .env("NOTIFY_SOCKET", &notify)
            .env("WATCHDOG_USEC", watchdog_usec.to_string())
            .env("EDGECC_LOG", "info")
            .env("EDGECC_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn edgecc run");
        let stderr = child.stderr.take().expect("stderr");
        Supervised {
            child,
            socket,
            stderr: lines(stderr),
            _dir: dir,
        }
    }

    /// The next notification (one datagram), if one comes within `wait`.
    fn next(&self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            match self.socket.recv(&mut buf) {
                Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("notify socket: {e}"),
            }
        }
        None
    }

    /// Notifications until one contains `line`; panics after the timeout.
    fn until(&self, line: &str) -> Vec<String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.next(Duration::from_millis(200)) {
                let hit = m.lines().any(|l| l == line);
                seen.push(m);
                if hit {
                    return seen;
                }
            }
        }
        panic!("no {line} within {STEP_TIMEOUT:?}; got {seen:?}");
    }

    /// Every notification during `span`.
    fn collect(&self, span: Duration) -> Vec<String> {
        let deadline = Instant::now() + span;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.next(deadline.saturating_duration_since(Instant::now())) {
                seen.push(m);
            }
        }
        seen
    }

    /// A stderr line (JSON log) whose message contains `text`.
    fn log_line(&self, text: &str) -> serde_json::Value {
        let deadline = Instant::now() + STEP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"].as_str().is_some_and(|m| m.contains(text)) {
                        return v;
                    }
                }
            }
        }
        panic!("no log line {text:?} within {STEP_TIMEOUT:?}");
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stderr on a thread, line by line.
fn lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A parsed `STATUS=` line: the state word and its `key=value` pairs.
fn parse_status(line: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let mut words = line.split(' ');
    let state = words.next().unwrap_or("").to_string();
    let pairs = words
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {w:?} in {line:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    (state, pairs)
}

/// Every `STATUS=` value in `messages`.
fn statuses(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.lines())
        .filter_map(|l| l.strip_prefix("STATUS="))
        .map(str::to_string)
        .collect()
}

/// How many messages carry `WATCHDOG=1`.
fn watchdogs(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

fn kill(child: &Child, signal: libc::c_int) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

/// Goal: the daemon speaks systemd's notify protocol as the unit expects.
/// Method: run it with a fake NOTIFY_SOCKET and a 1.5 s watchdog; when
/// READY=1 arrives, /readyz and the admin socket must already answer;
/// WATCHDOG=1 must keep coming (about every 0.5 s); STATUS= lines must
/// parse; SIGTERM must bring STOPPING=1 and exit status 0.
#[test]
fn notify_ready_watchdog_status_and_stopping() {
    let mut d = Supervised::start(1_500_000, &[]);
    let addr = d.log_line("HTTP listening")["addr"]
        .as_str()
        .expect("addr field")
        .to_string();
    let before = d.until("READY=1");
    assert_eq!(watchdogs(&before), 0, "WATCHDOG before READY: {before:?}");
    // Ready means ready: the probe and the admin socket answer right away.
    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""ready":true"#), "{body}");
    let socket = d._dir.path().join("admin.sock");
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());

    let ready_status = statuses(&before);
    let (state, pairs) = parse_status(ready_status.last().expect("STATUS with READY"));
    assert_eq!(state, "running");
    assert_eq!(pairs["outbox_depth"].parse::<u64>().ok(), Some(0));
    assert_eq!(pairs["pbx"], "up");
    assert_eq!(pairs["crm"], "none");

    let running = d.collect(Duration::from_secs(3));
    assert!(
        watchdogs(&running) >= 3,
        "too few WATCHDOG=1 in 3 s: {running:?}"
    );
    let lines = statuses(&running);
    assert!(!lines.is_empty(), "no STATUS= lines: {running:?}");
    for line in &lines {
        let (state, pairs) = parse_status(line);
        assert_eq!(state, "running", "{line}");
        assert!(pairs["outbox_depth"].parse::<u64>().is_ok(), "{line}");
        assert!(pairs["dead_letters"].parse::<u64>().is_ok(), "{line}");
        assert_eq!(pairs["pbx"], "up", "{line}");
    }

    kill(&d.child, libc::SIGTERM);
    let stopping = d.until("STOPPING=1");
    assert!(!stopping.is_empty());
    let deadline = Instant::now() + STEP_TIMEOUT;
    let status = loop {
        if let Some(status) = d.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no exit within {STEP_TIMEOUT:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    // Nothing after STOPPING=1 says WATCHDOG: the health check ended first.
    let after = d.collect(Duration::from_millis(300));
    assert_eq!(watchdogs(&after), 0, "{after:?}");
}

/// Goal: a wedged actor system is not kept alive by the watchdog. Method:
/// the debug-build test hook blocks the actors' thread 1.5 s after start;
/// WATCHDOG=1 must have come before it, a `degraded failed=registry…`
/// status must follow, no WATCHDOG=1 after that, and the daemon must log
/// the failed check (the journal's explanation for systemd's restart).
#[cfg(debug_assertions)]
#[test]
fn wedged_actors_stop_the_watchdog() {
    let d = Supervised::start(
        900_000,
        &[("EDGECC_TEST_ONLY_WEDGE_ACTORS_AFTER_MS", "1500")],
    );
    let mut seen = d.until("READY=1");
    // Until the first degraded status: pings must have been flowing.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no degraded status: {seen:?}");
        let Some(m) = d.next(Duration::from_millis(200)) else {
            continue;
        };
        let degraded = m.lines().any(|l| l.starts_with("STATUS=degraded"));
        seen.push(m);
        if degraded {
            break;
        }
    }
    assert!(watchdogs(&seen) >= 2, "no pings before the wedge: {seen:?}");
    let (state, pairs) = parse_status(statuses(&seen).last().expect("status"));
    assert_eq!(state, "degraded");
    assert!(
        pairs["failed"].split(',').any(|f| f == "registry"),
        "{pairs:?}"
    );
    // Three watchdog intervals and more: not one ping.
    let after = d.collect(Duration::from_secs(3));
    assert_eq!(watchdogs(&after), 0, "pings while wedged: {after:?}");
    assert!(!statuses(&after).is_empty(), "the check goes on reporting");
    let log = d.log_line("Health check failed");
    assert!(
        log["failed"]
            .as_str()
            .is_some_and(|f| f.contains("registry")),
        "{log}"
    );
}

/// Goal: the box's role in an HA pair shows where an installer and the
/// cluster look (issue 21). Method: with `EDGECC_HA_ROLE=active` (what the
/// cluster resource sets) the READY status line says `role=active`,
/// `/readyz` `"ha_role":"active"` and `/metrics`
/// `edgecc_ha_role{role="active"} 1`; with it empty, `standalone`
/// everywhere; a value that is no role is refused at start, naming the
/// variable.
#[test]
fn the_ha_role_shows_in_status_readyz_and_metrics() {
    for (value, role) in [("active", "active"), ("", "standalone")] {
        let d = Supervised::start(1_500_000, &[("EDGECC_HA_ROLE", value)]);
        let addr = d.log_line("HTTP listening")["addr"]
            .as_str()
            .expect("addr field")
            .to_string();
        let ready = d.until("READY=1");
        let (_, pairs) = parse_status(statuses(&ready).last().expect("STATUS with READY"));
        assert_eq!(pairs["role"], role, "{ready:?}");
        let (status, body) = http_get(&addr, "/readyz");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["ha_role"], role, "{body}");
        let (_, metrics) = http_get(&addr, "/metrics");
        let line = format!("edgecc_ha_role{{role=\"{role}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "no {line}: {metrics}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edgecc.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\n").expect("config");
    let out = edgecc()
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--admin-socket")
        .arg(dir.path().join("admin.sock"))
        .arg("run")
        .env("EDGECC_HA_ROLE", "primary")
        .stdin(Stdio::null())
        .output()
        .expect("run edgecc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a bad role: {stderr}");
    assert!(
        stderr.contains("EDGECC_HA_ROLE") && stderr.contains("primary"),
        "{stderr}"
    );
}
