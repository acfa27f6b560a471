//! End to end in a real browser: headless Debian Chromium driven through
//! chromedriver (W3C WebDriver over plain HTTP, with a few lines of client
//! on `awc` instead of another crate). An agent logs in, goes Ready, gets a
//! call from the simulated PBX, accepts, holds, resumes, hangs up and wraps
//! up, while a supervisor's wallboard in a second window shows each state
//! change and the supervisor monitors the call then leaves it.
//! Screenshots land in `target/artifacts/browser/`.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (`.ci/install-browser.sh`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{HttpTest, HTTP_TEST_PASSWORD};

/// The browser binary (Debian's package; never downloaded).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest wait for chromedriver to answer `/status`.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for one WebDriver command (session creation is the slow one).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for something to show on a page.
const UI_WAIT: Duration = Duration::from_secs(15);
/// W3C WebDriver's element reference key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session; both end on drop.
/// How often a click is retried when its element was re-rendered under it.
const STALE_RETRIES: usize = 20;

struct Browser {
    /// chromedriver (our child).
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    /// Screenshots go here.
    artifacts: PathBuf,
    /// Keeps the fresh profile directory alive.
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn driver_binary() -> String {
    for p in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    "chromedriver".to_owned()
}

impl Browser {
    async fn start() -> Browser {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run .ci/install-browser.sh"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Command::new(driver_binary())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver (run .ci/install-browser.sh)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            let ok = client()
                .get(format!("{base}/status"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let mut b = Browser {
            driver,
            session: base.clone(),
            artifacts: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/artifacts/browser"),
            _profile: profile,
        };
        let v = b.cmd("POST", "/session", Some(caps)).await;
        let id = v["sessionId"].as_str().expect("session id").to_owned();
        b.session = format!("{base}/session/{id}");
        std::fs::create_dir_all(&b.artifacts).expect("artifacts dir");
        b
    }

    /// One WebDriver command; answers `value`; panics on a WebDriver error.
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|message| panic!("{message}"))
    }

    /// One WebDriver command; a WebDriver error comes back as its message.
    async fn try_cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{}", self.session, path);
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        let req = client().request(method, url.clone());
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("webdriver {url}: {e}"));
        let bytes = res
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .expect("webdriver body");
        let v: Value = serde_json::from_slice(&bytes).expect("webdriver json");
        if res.status().is_success() {
            Ok(v["value"].clone())
        } else {
            Err(format!("webdriver {url}: {}", v["value"]["message"]))
        }
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks `css`. The UI re-renders on every event, so an element found
    /// a moment ago may be replaced before the click lands ("stale
    /// element"): find it again and retry, a bounded number of times.
    async fn click(&self, css: &str) {
        let mut last = String::new();
        for _ in 0..STALE_RETRIES {
            let id = self.find(css).await;
            match self
                .try_cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
                .await
            {
                Ok(_) => return,
                Err(message) if message.contains("stale element") => {
                    last = message;
                    actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(message) => panic!("{message}"),
            }
        }
        panic!("{css}: still stale after {STALE_RETRIES} tries: {last}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        // (The login form is not re-rendered by events: no stale retry.)
        let id = self.find(css).await;
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until `script` (a JS expression) is true.
    async fn wait(&self, what: &str, expr: &str) {
        let deadline = Instant::now() + UI_WAIT;
        let script = format!("try {{ return !!({expr}); }} catch (e) {{ return false; }}");
        loop {
            if self.js(&script).await == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-")))
                    .await;
                let body = self.js("return document.body.innerText").await;
                panic!("timed out waiting for {what}; page:\n{body}");
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .expect("screenshot base64");
        std::fs::write(self.artifacts.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn new_window(&self) -> String {
        let v = self
            .cmd("POST", "/window/new", Some(json!({"type": "window"})))
            .await;
        v["handle"].as_str().expect("handle").to_owned()
    }

    async fn window(&self) -> String {
        self.cmd("GET", "/window", None)
            .await
            .as_str()
            .expect("handle")
            .to_owned()
    }

    async fn switch(&self, handle: &str) {
        self.cmd("POST", "/window", Some(json!({"handle": handle})))
            .await;
    }

    async fn login(&self, user: &str) {
        self.wait("login form", "!document.getElementById('login').hidden")
            .await;
        self.type_into("#login-id", user).await;
        self.type_into("#login-password", HTTP_TEST_PASSWORD).await;
        self.click("#login-submit").await;
    }

    async fn quit(&self) {
        self.cmd("DELETE", "", None).await;
    }
}

fn client() -> awc::Client {
    awc::Client::builder().timeout(COMMAND_TIMEOUT).finish()
}

/// JS: the wallboard row of `agent` has `state`.
fn wall_state(agent: &str, state: &str) -> String {
    format!(
        "document.querySelector(\"#team tr[data-agent='{agent}']\").dataset.state === '{state}'"
    )
}

/// JS: the desktop's state badge says `state`.
fn desk_state(state: &str) -> String {
    format!("document.getElementById('agent-state').dataset.state === '{state}'")
}

/// The agent's whole call in the browser, mirrored on the wallboard.
#[actix_rt::test]
async fn http_browser_agent_call_and_wallboard() {
    let t = HttpTest::start(crate::util::http_config(3_600_000, 3_600_000)).await;
    t.phone_rings("1001", 1).await;
    let b = Browser::start().await;

    // Supervisor wallboard in the first window.
    let wall = b.window().await;
    b.goto(&t.url("/wallboard")).await;
    b.login("sue").await;
    b.wait("wallboard grid", &wall_state("ann", "logged_out"))
        .await;
    b.screenshot("01-wallboard").await;

    // Agent desktop in a second window (its own sessionStorage).
    let desk = b.new_window().await;
    b.switch(&desk).await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    b.click("#state-select option[value='login']").await;
    b.click("#state-apply").await;
    b.wait("not ready", &desk_state("not_ready")).await;
    b.click("#state-select option[value='ready']").await;
    b.click("#state-apply").await;
    b.wait("ready", &desk_state("ready")).await;
    b.screenshot("02-desktop-ready").await;
    b.switch(&wall).await;
    b.wait("wallboard ready", &wall_state("ann", "ready")).await;

    // A call arrives: the offer shows the caller; accept.
    let call = t.place_call("+15554443333").await;
    b.switch(&desk).await;
    b.wait("offer", "!document.getElementById('offer').hidden && document.getElementById('offer-ani').textContent === '+15554443333'").await;
    b.screenshot("03-desktop-offer").await;
    b.switch(&wall).await;
    b.wait("wallboard reserved", &wall_state("ann", "reserved"))
        .await;
    b.switch(&desk).await;
    b.click("#accept").await;
    b.wait(
        "talking",
        &format!(
            "{} && !document.getElementById('call').hidden",
            desk_state("talking")
        ),
    )
    .await;
    b.wait(
        "sync badge",
        "document.getElementById('sync-badge').dataset.sync",
    )
    .await;
    b.screenshot("04-desktop-talking").await;
    b.switch(&wall).await;
    b.wait("wallboard talking", &wall_state("ann", "talking"))
        .await;
    // The supervisor listens in, then leaves.
    b.click("button[aria-label='Monitor ann']").await;
    b.wait(
        "wallboard monitoring",
        "document.querySelector(\"#team tr[data-agent='ann']\").textContent.includes('monitor by sue')",
    )
    .await;
    b.screenshot("04b-wallboard-monitoring").await;
    b.click("button[aria-label='Leave call ann']").await;
    b.wait(
        "wallboard left the call",
        "!document.querySelector(\"#team tr[data-agent='ann']\").textContent.includes('monitor by')",
    )
    .await;

    // Hold and resume.
    b.switch(&desk).await;
    b.click("#hold").await;
    b.wait("held", "!document.getElementById('call-held').hidden")
        .await;
    b.screenshot("05-desktop-held").await;
    b.switch(&wall).await;
    b.wait(
        "wallboard held",
        "document.querySelector(\"#team tr[data-agent='ann']\").textContent.includes('(held)')",
    )
    .await;
    b.switch(&desk).await;
    b.click("#resume").await;
    b.wait("resumed", "document.getElementById('call-held').hidden")
        .await;

    // Refresh mid-call: same screen.
    b.goto(&t.url("/")).await;
    b.wait(
        "after refresh",
        &format!(
            "{} && document.getElementById('call-ani').textContent === '+15554443333'",
            desk_state("talking")
        ),
    )
    .await;

    // Hang up, wrap up with a code, end wrap-up.
    b.click("#hangup").await;
    b.wait(
        "wrap-up",
        &format!(
            "{} && !document.getElementById('wrapup').hidden",
            desk_state("wrap_up")
        ),
    )
    .await;
    b.switch(&wall).await;
    b.wait("wallboard wrap-up", &wall_state("ann", "wrap_up"))
        .await;
    b.switch(&desk).await;
    b.type_into("#wrapup-code", "sale").await;
    b.click("#wrapup-save").await;
    b.wait(
        "code saved",
        "document.getElementById('status').textContent.includes('wrap up done')",
    )
    .await;
    b.screenshot("06-desktop-wrapup").await;
    b.click("#wrapup-end").await;
    b.wait("ready again", &desk_state("ready")).await;
    b.switch(&wall).await;
    b.wait("wallboard ready again", &wall_state("ann", "ready"))
        .await;
    b.screenshot("07-wallboard-ready-again").await;

    // The call really ended at the PBX side too.
    let (s, v) = t
        .call("GET", "/api/v1/calls", Some(&t.login("sue").await), None)
        .await;
    assert_eq!(s, 200);
    assert!(
        !v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call"] == call.as_str() && c["phase"] != "ended"),
        "{v}"
    );
    b.quit().await;
    t.http.stop().await;
}
