//! The agent desktop's queue panel and today's time zone in the browser
//! (issue 20): a call waiting in the agent's queue shows in "My queues"
//! with its count and a longest wait that ticks in the page, and leaves
//! it once answered; the figures say which zone's midnight they count
//! from; the panel fits 414 px; no script error.

use super::{desk_state, Browser};
use crate::util::HttpTest;

/// JS: the text of the queue panel's cell `n` (0: name, 1: waiting, 2:
/// longest wait) of `queue`'s row.
fn cell(queue: &str, n: usize) -> String {
    format!(
        "(document.querySelectorAll(\"#queue-rows tr[data-queue='{queue}'] th, #queue-rows tr[data-queue='{queue}'] td\")[{n}] || {{}}).textContent"
    )
}

#[actix_rt::test]
async fn http_browser_queue_panel_and_today_zone() {
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.reports.time_zone = "Pacific/Auckland".into();
    let t = HttpTest::start(config).await;
    t.phone_rings("1001", 1).await;
    let b = Browser::start().await;
    b.goto(&t.url("/")).await;
    b.login("ann").await;
    b.wait("desktop", &desk_state("logged_out")).await;
    b.wait(
        "sales, nobody waiting",
        &format!(
            "{} === 'Sales' && {} === '0' && {} === '—'",
            cell("sales", 0),
            cell("sales", 1),
            cell("sales", 2)
        ),
    )
    .await;
    b.wait(
        "today's zone",
        "document.getElementById('fig-zone').textContent === ', Pacific/Auckland'",
    )
    .await;

    // Ann is logged out: the call waits, and her panel shows it by itself.
    t.place_call("+15553334444").await;
    b.wait(
        "one waiting, wait ticking",
        &format!(
            "{} === '1' && /^0:0[1-9]$/.test({})",
            cell("sales", 1),
            cell("sales", 2)
        ),
    )
    .await;
    let first = b.js(&format!("return {}", cell("sales", 2))).await;
    b.wait(
        "the wait grows in the page",
        &format!("{} > '{}'", cell("sales", 2), first.as_str().unwrap_or("")),
    )
    .await;
    b.size(414, 900).await;
    assert_eq!(b.off_screen().await, serde_json::json!([]));
    b.screenshot("41-desktop-queue-waiting-414").await;
    b.size(1366, 900).await;

    b.apply_state("login", Some("not_ready")).await;
    b.apply_state("ready", None).await;
    b.wait("offer", "!document.getElementById('offer').hidden")
        .await;
    b.click("#accept").await;
    b.wait("talking", &desk_state("talking")).await;
    b.wait(
        "nobody waiting",
        &format!(
            "{} === '0' && {} === '—'",
            cell("sales", 1),
            cell("sales", 2)
        ),
    )
    .await;
    b.screenshot("42-desktop-queue-answered").await;
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new());
    b.quit().await;
    t.http.stop().await;
}
