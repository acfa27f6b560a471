//! An Accept on the agent desktop whose HTTP answer arrives after the event
//! stream said "talking" (issue 20's unexplained CI failure): the answer
//! of `POST /calls/{id}/accept` is a snapshot made when the call only
//! asked the phone to answer (the agent still reserved); the push that
//! says "talking" comes later on the WebSocket, another connection. Under
//! load the answer, made first, can arrive last; the page applied it over
//! the newer push and stayed "reserved" with the offer card shown and
//! "Call accepted" in its status line, with nothing more to push. The
//! page now keeps a pushed snapshot that arrived while an action was
//! awaited. Here the page's own `fetch` holds the accept's answer until
//! the page has shown "talking" for a while, so the late arrival happens
//! on every run.

use super::{desk_state, Browser};
use crate::util::HttpTest;

/// JS: wraps `fetch` so that the answer of an accept is handed to the page
/// only once the page has shown "talking" for 0.5 s; records the state that answer
/// carried in `window.acceptAnswerState`.
const HOLD_ACCEPT_ANSWER: &str = r#"
const real = window.fetch;
window.fetch = async function (url, opts) {
  const res = await real(url, opts);
  if (!String(url).endsWith("/accept")) return res;
  const body = await res.text();
  try { window.acceptAnswerState = JSON.parse(body).agent.state; } catch (_) { window.acceptAnswerState = "?"; }
  // Handed over once the page has shown "talking" for 0.5 s: the pushes
  // that follow a connect are over, nothing comes after the answer.
  await new Promise((done) => {
    let since = 0;
    const poll = () => {
      if (document.getElementById("agent-state").dataset.state !== "talking") since = 0;
      else if (!since) since = Date.now();
      if (since && Date.now() - since >= 500) done(); else setTimeout(poll, 20);
    };
    poll();
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
};
return true;
"#;

/// Goal: a late answer of the desktop's Accept does not take the page back
/// to "reserved" once the event stream said "talking". Method: the
/// scenario of the CI failure (a call waits while Ann is logged out; she
/// logs in, goes Ready, gets the offer and accepts on the desktop), with
/// the accept's answer held in the page until it shows "talking"; then the
/// page must still show "talking" with the offer card hidden after the
/// answer was applied ("Call accepted" shown). Before the fix the page
/// went back to "reserved" and stayed there.
#[actix_rt::test]
async fn http_browser_late_accept_answer_keeps_talking() {
    let t = HttpTest::start(crate::util::http_config(3_600_000, 3_600_000)).await;
    t.phone_rings("1001", 1).await;
    let b = Browser::start().await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    t.place_call("+15553334444").await;

    b.apply_state("login", Some("not_ready")).await;
    b.apply_state("ready", None).await;
    b.wait("offer", "!document.getElementById('offer').hidden")
        .await;
    assert_eq!(b.js(HOLD_ACCEPT_ANSWER).await, serde_json::json!(true));
    b.click("#accept").await;
    b.wait("talking", &desk_state("talking")).await;
    b.wait(
        "the accept's answer applied",
        "document.getElementById('status').textContent === 'Call accepted'",
    )
    .await;
    // What the held answer said: normally "reserved" (made before the
    // phone answered), which is what took the page back before the fix.
    let carried = b.js("return window.acceptAnswerState").await;
    eprintln!("the accept's answer carried the state {carried}");
    // The daemon has Ann talking: only the page could be wrong.
    let token = t.login("ann").await;
    t.wait_me(&token, "ann talking at the daemon", |v| {
        v["agent"]["state"] == "talking"
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            b.js(&format!(
                "return [{}, document.getElementById('offer').hidden]",
                desk_state("talking")
            ))
            .await,
            serde_json::json!([true, true]),
            "the page left \"talking\" after the accept's late answer (it carried {carried}), while the daemon has Ann talking"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    b.screenshot("43-desktop-late-accept-answer").await;
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new());
    b.quit().await;
    t.http.stop().await;
}
