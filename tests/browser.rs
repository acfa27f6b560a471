//! End to end in a real browser: headless Debian Chromium driven through
//! chromedriver (W3C WebDriver over plain HTTP, with a few lines of client
//! on `awc` instead of another crate). An agent logs in, goes Ready, gets a
//! call from the simulated PBX that rings (tone, title, countdown, focus),
//! accepts it from the keyboard, holds, resumes, hangs up, finishes its
//! wrap-up with a typed code and Enter, and logs out of the desktop (out of
//! routing too), while a supervisor's wallboard in a second window shows
//! each state change and the supervisor monitors the call then leaves it.
//! A second agent is consulted through the directory; an unanswered offer
//! leaves a missed-call banner; the outage banner disables the controls; both pages fit 414 px and 1366 px; no page logs a
//! script error. Screenshots land in `target/artifacts/browser/`.
//!
//! Needs `/usr/bin/chromium` and `chromedriver` (`.ci/install-browser.sh`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::util::{HttpTest, HTTP_TEST_PASSWORD};

mod desk_accept;
mod desk_keys;
mod desk_queues;
mod restart;
mod wallboard;

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
    /// Picks `value` in the desktop's state list and applies it; then,
    /// when `state` is given, waits until the desktop shows that state.
    async fn apply_state(&self, value: &str, state: Option<&str>) {
        self.click(&format!("#state-select option[value='{value}']"))
            .await;
        self.click("#state-apply").await;
        if let Some(state) = state {
            self.wait(&format!("state {state}"), &desk_state(state))
                .await;
        }
    }

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
                    // The ring is Web Audio: let it start without a click.
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
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

    /// Clicks `css` unless the page took it away first (hidden, or
    /// re-rendered away): for a click that races something the page does
    /// on its own, where the test then waits for the outcome both lead to.
    async fn click_unless_gone(&self, css: &str) {
        let id = self.find(css).await;
        if let Err(message) = self
            .try_cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await
        {
            assert!(
                message.contains("not interactable") || message.contains("stale element"),
                "{message}"
            );
        }
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

    /// Presses keys together (e.g. Alt, Shift, `a`) on the focused element.
    async fn chord(&self, keys: &[&str]) {
        let mut actions: Vec<Value> = keys
            .iter()
            .map(|k| json!({"type": "keyDown", "value": k}))
            .collect();
        actions.extend(
            keys.iter()
                .rev()
                .map(|k| json!({"type": "keyUp", "value": k})),
        );
        self.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keys", "actions": actions}]})),
        )
        .await;
        self.cmd("DELETE", "/actions", None).await;
    }

    /// Resizes the window (CSS px of the viewport follow).
    async fn size(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// What sticks out of the viewport horizontally: the page scrolls
    /// sideways, or a visible button, cell or field ends past its right edge.
    async fn off_screen(&self) -> Value {
        self.js(
            "const w = document.documentElement.clientWidth; const out = [];
             if (document.documentElement.scrollWidth > w) out.push('page ' + document.documentElement.scrollWidth + ' > ' + w);
             for (const e of document.querySelectorAll('button, th, td, input, select, .badge')) {
               const r = e.getBoundingClientRect();
               if (r.width > 0 && r.right > w + 1) out.push((e.id || e.getAttribute('aria-label') || e.textContent).slice(0, 40) + ' ' + Math.round(r.right));
             }
             return out;",
        )
        .await
    }

    /// The browser console's errors (every window's) since the last call
    /// (chromedriver's log endpoint drains it), leaving out the expected
    /// network ones that match `expected`.
    async fn console_errors(&self, expected: &[&str]) -> Vec<String> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        v.as_array()
            .map(|a| a.to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .filter(|m| !expected.iter().any(|x| m.contains(x)))
            .collect()
    }

    /// A DevTools protocol command through chromedriver (`goog/cdp`).
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
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

/// JS: the element `id` has the focus.
fn focused(id: &str) -> String {
    format!("document.activeElement && document.activeElement.id === '{id}'")
}

/// JS: the values of the options of select `id`, comma-separated.
fn options(id: &str) -> String {
    format!("[...document.getElementById('{id}').options].map((o) => o.value).join(',')")
}

/// JS: the wallboard's action buttons of `agent`, by label.
fn wall_actions(agent: &str) -> String {
    format!(
        "[...document.querySelectorAll(\"#team tr[data-agent='{agent}'] button\")].map((b) => b.textContent).join(',')"
    )
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
    // Nothing to force on an agent who is not logged in.
    assert_eq!(b.js(&format!("return {}", wall_actions("ann"))).await, "");
    b.screenshot("01-wallboard").await;

    // Agent desktop in a second window (its own sessionStorage).
    let desk = b.new_window().await;
    b.switch(&desk).await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    // Logged out, the only move is to log in; the focus is on the list.
    assert_eq!(
        b.js(&format!("return {}", options("state-select"))).await,
        "login"
    );
    b.wait("focus on the state list", &focused("state-select"))
        .await;
    b.apply_state("login", Some("not_ready")).await;
    assert_eq!(
        b.js(&format!("return {}", options("state-select"))).await,
        "ready,not_ready:break,not_ready:lunch,logout"
    );
    b.wait(
        "reason in words",
        "document.getElementById('agent-reason').textContent === '(just logged in)'",
    )
    .await;
    b.apply_state("ready", Some("ready")).await;
    assert_eq!(
        b.js(&format!("return {}", options("state-select"))).await,
        "not_ready:break,not_ready:lunch,logout"
    );
    b.screenshot("02-desktop-ready").await;
    b.switch(&wall).await;
    b.wait("wallboard ready", &wall_state("ann", "ready")).await;
    b.wait(
        "ready counted",
        "document.querySelector(\"#counts [data-state='ready']\").textContent === 'Ready 1'",
    )
    .await;
    // Log out asks for a confirmation first.
    b.click("button[aria-label='Log out ann']").await;
    b.wait(
        "confirmation",
        "!!document.querySelector(\"button[aria-label='Confirm log out ann']\")",
    )
    .await;
    b.screenshot("01b-wallboard-confirm-logout").await;
    b.click("button[aria-label='Cancel ann']").await;
    b.wait(
        "no confirmation",
        "!document.querySelector(\"button[aria-label='Confirm log out ann']\")",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector(\"#team tr[data-agent='ann']\").dataset.state")
            .await,
        "ready",
        "one click does not log the agent out"
    );

    // A call arrives: the offer shows the caller and rings.
    let call = t.place_call("+15554443333").await;
    b.switch(&desk).await;
    b.wait("offer", "!document.getElementById('offer').hidden && document.getElementById('offer-ani').textContent === '+15554443333'").await;
    b.wait("focus on accept", &focused("accept")).await;
    b.wait(
        "ring tone",
        "document.getElementById('offer').dataset.ring === 'playing'",
    )
    .await;
    b.wait(
        "title flash",
        "document.title.startsWith('☎ Incoming call · +15554443333')",
    )
    .await;
    // 120 s offer timeout: the countdown shows the time left.
    b.wait(
        "countdown",
        "/^(2:00|1:[0-5][0-9])$/.test(document.getElementById('offer-countdown').textContent)",
    )
    .await;
    b.screenshot("03-desktop-offer").await;
    b.switch(&wall).await;
    b.wait("wallboard reserved", &wall_state("ann", "reserved"))
        .await;
    b.switch(&desk).await;
    // Accept from the keyboard.
    b.chord(&["\u{E00A}", "\u{E008}", "a"]).await;
    b.wait(
        "talking",
        &format!(
            "{} && !document.getElementById('call').hidden",
            desk_state("talking")
        ),
    )
    .await;
    b.wait("ring stopped", "document.getElementById('offer').dataset.ring === 'silent' && !document.title.includes('Incoming')").await;
    b.wait("focus on hang up", &focused("hangup")).await;
    b.wait(
        "sync badge",
        "document.getElementById('sync-badge').dataset.sync",
    )
    .await;
    // The directory: the colleague with its state, the queue.
    b.wait(
        "directory",
        "[...document.getElementById('target').options].some((o) => o.value === 'agent:bob' && o.textContent === 'bob — logged out' && o.disabled) && [...document.getElementById('target').options].some((o) => o.value === 'queue:sales')",
    )
    .await;
    // No consult: no consult buttons.
    assert_eq!(
        b.js("return document.getElementById('consult-box').hidden")
            .await,
        true
    );
    // The interaction's record waits in the outbox (no CRM delivers it
    // here): "Open interaction" says so in one sentence that agrees with
    // the call card's "CRM: pending" (issue 20, fault 6).
    b.click("#open-interaction").await;
    b.wait(
        "interaction on its way",
        "document.getElementById('status').textContent.endsWith(' is on its way to the CRM.') && document.getElementById('call').innerText.includes('CRM: pending')",
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
    // A second of talk time at least, so the final figure is not 0:00.
    actix_rt::time::sleep(Duration::from_millis(1_100)).await;

    // Hang up; wrap-up keeps the final talk time and counts down.
    b.click("#hangup").await;
    b.wait(
        "wrap-up",
        &format!(
            "{} && !document.getElementById('wrapup').hidden",
            desk_state("wrap_up")
        ),
    )
    .await;
    b.wait(
        "final talk time",
        "document.getElementById('call-timer-label').textContent === 'Talk time' && /^0:0[1-9]|^0:[1-5][0-9]/.test(document.getElementById('call-timer').textContent)",
    )
    .await;
    b.wait(
        "wrap-up countdown",
        "/^(10:00|9:[0-5][0-9])$/.test(document.getElementById('wrapup-countdown').textContent)",
    )
    .await;
    b.wait("focus on the code", &focused("wrapup-code")).await;
    b.switch(&wall).await;
    b.wait("wallboard wrap-up", &wall_state("ann", "wrap_up"))
        .await;
    b.switch(&desk).await;
    // Type the code and press Enter: one Finish saves it and ends wrap-up.
    b.type_into("#wrapup-code", "sale\u{E007}").await;
    b.wait("ready again", &desk_state("ready")).await;
    b.wait(
        "code saved",
        "document.getElementById('status').textContent === 'Wrap-up finished with code sale'",
    )
    .await;
    b.screenshot("06-desktop-wrapup-finished").await;
    b.switch(&wall).await;
    b.wait("wallboard ready again", &wall_state("ann", "ready"))
        .await;
    b.screenshot("07-wallboard-ready-again").await;

    // The call really ended at the PBX side too.
    let sue = t.login("sue").await;
    let (s, v) = t.call("GET", "/api/v1/calls", Some(&sue), None).await;
    assert_eq!(s, 200);
    assert!(
        !v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call"] == call.as_str() && c["phase"] != "ended"),
        "{v}"
    );

    // Layouts: a phone and a laptop, nothing off screen.
    for (width, name) in [(414, "phone"), (1366, "laptop")] {
        for (window, page) in [(&wall, "wallboard"), (&desk, "desktop")] {
            b.switch(window).await;
            b.size(width, 900).await;
            b.wait(
                "resized",
                &format!("document.documentElement.clientWidth <= {width}"),
            )
            .await;
            let out = b.off_screen().await;
            b.screenshot(&format!("08-{page}-{name}")).await;
            assert_eq!(out, json!([]), "{page} at {width} px");
        }
    }
    // The browser's log (every window): no script error, no failed load.
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new());

    // Leaving the desktop logs the agent out of routing: no caller rings an
    // empty desk.
    b.click("#logout").await;
    b.wait("login screen", "!document.getElementById('login').hidden")
        .await;
    let (s, v) = t.call("GET", "/api/v1/agents", Some(&sue), None).await;
    assert_eq!(s, 200);
    let ann = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "ann")
        .cloned()
        .unwrap();
    assert_eq!(ann["state"], "logged_out", "{v}");
    b.quit().await;
    t.http.stop().await;
}

/// Consult through the directory, seen from both desktops and the
/// wallboard; a session that ends says so on the login screen; an outage
/// shows a banner and disables every control.
#[actix_rt::test]
async fn http_browser_consult_session_end_and_outage() {
    let t = HttpTest::start(crate::util::http_config(3_600_000, 3_600_000)).await;
    t.phone_rings("1001", 1).await;
    t.phone_rings("1002", 1).await;
    let b = Browser::start().await;
    let wall = b.window().await;
    b.goto(&t.url("/wallboard")).await;
    b.login("sue").await;
    b.wait("wallboard grid", &wall_state("bob", "logged_out"))
        .await;

    // Bob logs in (Not Ready: he takes consults, not queue calls).
    let bob = b.new_window().await;
    b.switch(&bob).await;
    b.goto(&t.url("/")).await;
    b.login("bob").await;
    b.wait("bob's desktop", &desk_state("logged_out")).await;
    b.apply_state("login", Some("not_ready")).await;

    // Ann logs in, goes Ready and takes a call.
    let ann = b.new_window().await;
    b.switch(&ann).await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("ann's desktop", &desk_state("logged_out")).await;
    b.apply_state("login", Some("not_ready")).await;
    b.apply_state("ready", Some("ready")).await;
    t.place_call("+15557778888").await;
    b.wait("offer", "!document.getElementById('offer').hidden")
        .await;
    b.click("#accept").await;
    b.wait("talking", &desk_state("talking")).await;

    // The directory shows Bob Not Ready; consult him.
    b.wait(
        "bob in the directory",
        "[...document.getElementById('target').options].some((o) => o.value === 'agent:bob' && o.textContent === 'bob — not ready')",
    )
    .await;
    b.click("#target option[value='agent:bob']").await;
    b.click("#consult").await;
    b.wait(
        "consult ringing",
        "!document.getElementById('consult-box').hidden && document.getElementById('consult-status').dataset.consult === 'ringing' && document.getElementById('consult-complete').disabled && document.getElementById('transfer-controls').hidden",
    )
    .await;
    b.screenshot("11-ann-consult-ringing").await;

    // The wallboard's Bob row names Ann, not the caller.
    b.switch(&wall).await;
    b.wait(
        "bob's row",
        "document.querySelector(\"#team tr[data-agent='bob']\").textContent.includes('consult with ann') && !document.querySelector(\"#team tr[data-agent='bob']\").textContent.includes('+15557778888')",
    )
    .await;
    b.screenshot("12-wallboard-consult").await;

    // Bob's desktop: a consult from Ann; he accepts.
    b.switch(&bob).await;
    b.wait(
        "bob's offer",
        "!document.getElementById('offer').hidden && document.getElementById('offer-what').textContent === 'Consult from' && document.getElementById('offer-ani').textContent === 'ann'",
    )
    .await;
    b.click("#accept").await;
    b.wait("bob talking", &desk_state("talking")).await;
    b.wait(
        "bob sees ann",
        "document.getElementById('call-ani').textContent === 'ann'",
    )
    .await;

    // Ann: the consult is answered; make it a conference.
    b.switch(&ann).await;
    b.wait(
        "consult answered",
        "document.getElementById('consult-status').dataset.consult === 'answered' && !document.getElementById('consult-complete').disabled",
    )
    .await;
    b.screenshot("13-ann-consult-answered").await;
    b.click("#consult-conference").await;
    b.wait(
        "conference",
        "!document.getElementById('call-parties').hidden && [...document.querySelectorAll('#parties .party')].map((e) => e.textContent).join(', ') === 'ann (you), bob' && !!document.querySelector(\"button[aria-label='Drop bob from the conference']\") && !document.querySelector(\"button[aria-label='Drop ann from the conference']\")",
    )
    .await;
    b.screenshot("14-ann-conference").await;
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new(), "console");

    // Bob's session is revoked elsewhere: his next click says why he is
    // back at the login screen. The event link's heartbeat (every 10 s)
    // finds the revoked token too and leads to the same screen; on a busy
    // machine it can win, and the click then finds #mute hidden.
    b.switch(&bob).await;
    let token = b.js("return sessionStorage.getItem('edgecc.token')").await;
    let token = token.as_str().expect("bob's token").to_owned();
    let (s, _) = t
        .call("DELETE", "/api/v1/session", Some(&token), None)
        .await;
    assert_eq!(s, 204);
    b.click_unless_gone("#mute").await;
    b.wait(
        "session ended notice",
        "!document.getElementById('login').hidden && document.getElementById('status').textContent.startsWith('Your session ended')",
    )
    .await;
    b.screenshot("15-bob-session-ended").await;

    // Ann drops Bob from the conference: she talks on with the caller alone.
    b.switch(&ann).await;
    b.click("button[aria-label='Drop bob from the conference']")
        .await;
    b.wait(
        "bob dropped",
        "document.getElementById('call-parties').hidden && document.getElementById('status').textContent === 'bob left the conference'",
    )
    .await;
    b.screenshot("14b-ann-dropped-bob").await;

    // edgecc goes away: a banner, every control disabled, timers stopped.
    b.switch(&ann).await;
    // (The log is the browser's, all windows': Bob's refused click is in it.)
    let refused = ["status of 401 (Unauthorized)"];
    assert_eq!(
        b.console_errors(&refused).await,
        Vec::<String>::new(),
        "console"
    );
    t.http.stop().await;
    b.wait(
        "outage banner",
        "!document.getElementById('outage').hidden && document.getElementById('controls').disabled && document.getElementById('hangup').matches(':disabled')",
    )
    .await;
    let before = b
        .js("return document.getElementById('call-timer').textContent")
        .await;
    actix_rt::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        b.js("return document.getElementById('call-timer').textContent")
            .await,
        before,
        "the call timer stops while edgecc is out of reach"
    );
    b.screenshot("16-ann-outage").await;
    b.switch(&wall).await;
    b.wait(
        "wallboard outage banner",
        "!document.getElementById('outage').hidden && document.getElementById('controls').disabled",
    )
    .await;
    b.screenshot("17-wallboard-outage").await;
    // Only the lost connection's own network errors, no script error.
    let expected = ["WebSocket", "ERR_CONNECTION_REFUSED"];
    assert_eq!(b.console_errors(&expected).await, Vec::<String>::new());
    b.quit().await;
}

/// An offer nobody answers: the countdown runs out, the agent is Not Ready
/// and a banner says which call was missed; "Go Ready" clears it.
#[actix_rt::test]
async fn http_browser_missed_call_banner() {
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.contact_center.timers.offer_timeout_ms = 3_000;
    let t = HttpTest::start(config).await;
    t.phone_rings("1001", 1).await;
    let b = Browser::start().await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    b.apply_state("login", Some("not_ready")).await;
    b.apply_state("ready", Some("ready")).await;
    let sim = t.running.sim.clone().expect("sim");
    let caller = sim
        .send(edgecc_actors::sim::PlaceCall(
            edgecc_actors::sim::Caller::new("+15552223333", "+18005550100"),
        ))
        .await
        .expect("place call");
    b.wait(
        "countdown",
        "!document.getElementById('offer').hidden && /^0:0[1-3]$/.test(document.getElementById('offer-countdown').textContent)",
    )
    .await;
    b.wait(
        "missed banner",
        &format!(
            "{} && !document.getElementById('missed').hidden && document.getElementById('missed-text').textContent.startsWith('You missed a call from +15552223333')",
            desk_state("not_ready")
        ),
    )
    .await;
    b.wait(
        "reason in words",
        "document.getElementById('agent-reason').textContent === '(missed a call)'",
    )
    .await;
    b.screenshot("21-desktop-missed-call").await;
    // The caller gives up (else the call would ring Ann again at once).
    sim.send(edgecc_actors::sim::HangUpLeg {
        leg_id: caller,
        cause: edgecc_actors::ports::HangupCause::Normal,
    })
    .await
    .expect("hang up");
    let sue = t.login("sue").await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let (_, v) = t.call("GET", "/api/v1/calls", Some(&sue), None).await;
        let live = v["calls"]
            .as_array()
            .map(|c| c.iter().filter(|c| c["phase"] != "ended").count());
        if live == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the call did not end: {v}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    b.click("#missed-ready").await;
    b.wait(
        "ready again, banner gone",
        &format!(
            "{} && document.getElementById('missed').hidden",
            desk_state("ready")
        ),
    )
    .await;
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new());
    b.quit().await;
    t.http.stop().await;
}

/// Wrap-up codes, today's figures, the logged-out time and the offer's
/// notification. Sales lists two codes and requires one: the desktop shows
/// them as a select (no free text), a Finish without one is refused in
/// words, one chosen finishes. Today's figures count the Not Ready time
/// and the call. The desktop's tab is hidden behind another (Chromium
/// hides a background tab) with the notification permission granted
/// through the DevTools protocol (`Browser.grantPermissions`): an offer
/// raises a real notification, seen through a wrapper of the page's own
/// `Notification` that records each one it makes. After logging out, the
/// time since the logout shows.
#[actix_rt::test]
async fn http_browser_wrap_up_codes_figures_and_notification() {
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.contact_center.queues[0].wrap_up_codes = edgecc_actors::config::WrapUpCodes {
        codes: [("sale", "Sale"), ("no-sale", "No sale")]
            .iter()
            .map(|(code, label)| edgecc_actors::config::wrap_up::WrapUpCode {
                code: (*code).into(),
                label: (*label).into(),
            })
            .collect(),
        required: true,
    };
    let t = HttpTest::start(config).await;
    t.phone_rings("1001", 1).await;
    let b = Browser::start().await;
    b.goto(&t.url("/")).await;
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": t.base, "permissions": ["notifications"]}),
    )
    .await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    // Never logged out on this box: no time since edgecc started.
    assert_eq!(
        b.js("return document.getElementById('state-time').hidden")
            .await,
        true
    );
    b.apply_state("login", Some("not_ready")).await;
    b.wait(
        "today's figures",
        "document.getElementById('fig-calls').textContent === '0' && /^0:0[0-9]$/.test(document.getElementById('fig-not-ready').textContent)",
    )
    .await;
    b.apply_state("ready", Some("ready")).await;

    // The desktop's tab goes behind another; a call is offered meanwhile.
    b.js("window.__notes = []; const Real = Notification; window.Notification = class extends Real { constructor(title, o) { super(title, o); window.__notes.push([title, o.body, document.hidden]); } }; return true")
        .await;
    let desk = b.window().await;
    let other = b
        .cmd("POST", "/window/new", Some(json!({"type": "tab"})))
        .await;
    let other = other["handle"].as_str().expect("tab").to_owned();
    b.switch(&other).await;
    b.goto(&t.url("/favicon.ico")).await;
    t.place_call("+15556667777").await;
    let sue = t.login("sue").await;
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let (_, v) = t.call("GET", "/api/v1/agents", Some(&sue), None).await;
        let reserved = v["agents"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["agent_id"] == "ann" && a["state"] == "reserved")
        });
        if reserved {
            break;
        }
        assert!(Instant::now() < deadline, "no offer: {v}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The snapshot reaches the hidden page over its WebSocket.
    actix_rt::time::sleep(Duration::from_millis(1_000)).await;
    b.switch(&desk).await;
    b.wait(
        "a notification while hidden",
        "window.__notes.length === 1 && window.__notes[0][0] === 'Incoming call' && window.__notes[0][1] === 'Caller +15556667777 · sales' && window.__notes[0][2] === true",
    )
    .await;
    b.click("#accept").await;
    b.wait("talking", &desk_state("talking")).await;
    b.click("#hangup").await;
    b.wait("wrap-up", &desk_state("wrap_up")).await;

    // The queue's codes as a select, required; no free text.
    b.wait(
        "code select",
        "!document.getElementById('wrapup-select').hidden && document.getElementById('wrapup-code').hidden && document.getElementById('wrapup-label').textContent === 'Wrap-up code (required)'",
    )
    .await;
    assert_eq!(
        b.js("return [...document.getElementById('wrapup-select').options].map((o) => o.value + '=' + o.textContent).join(',')")
            .await,
        "=Choose a code…,sale=Sale,no-sale=No sale"
    );
    b.wait("focus on the select", &focused("wrapup-select"))
        .await;
    b.screenshot("31-desktop-wrap-up-codes").await;
    b.click("#wrapup-finish").await;
    b.wait(
        "refused in words",
        "document.getElementById('status').textContent === 'Choose a wrap-up code first: calls of queue sales need one before the wrap-up ends'",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('agent-state').dataset.state")
            .await,
        "wrap_up"
    );
    b.screenshot("32-desktop-code-required").await;
    b.click("#wrapup-select option[value='sale']").await;
    b.click("#wrapup-finish").await;
    b.wait("ready again", &desk_state("ready")).await;
    b.wait(
        "code saved",
        "document.getElementById('status').textContent === 'Wrap-up finished with code sale'",
    )
    .await;
    b.wait(
        "the call counted",
        "document.getElementById('fig-calls').textContent === '1' && document.getElementById('fig-aht').textContent !== '—'",
    )
    .await;

    // Logged out: the time since the logout.
    b.apply_state("logout", Some("logged_out")).await;
    b.wait(
        "time since logout",
        "!document.getElementById('state-time').hidden && /^0:0[0-9]$/.test(document.getElementById('state-timer').textContent)",
    )
    .await;
    b.screenshot("33-desktop-logged-out-time").await;
    // No script error anywhere; the one failed request is the refused
    // Finish (409), which the browser logs.
    let refused =
        ["wrap_up/end - Failed to load resource: the server responded with a status of 409"];
    assert_eq!(b.console_errors(&refused).await, Vec::<String>::new());
    b.quit().await;
    t.http.stop().await;
}
