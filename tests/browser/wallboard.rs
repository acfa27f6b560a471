//! The wallboard in the browser: its period figures (issue 19: today's
//! service level in the queue table counts a time-out and leaves a short
//! abandon out, with the queue's own threshold; the figures table, the
//! stated formula and the SVG chart show), an agent's display name and a
//! Force Not Ready with a reason picked from the configured codes (issue
//! 20); the page fits 414 px and logs no script error.

use serde_json::json;

use super::{wall_state, Browser};
use crate::util::HttpTest;

/// JS: the text of the wallboard's figures cell `label` of `queue`'s
/// `period` row.
fn figure(queue: &str, period: &str, label: &str) -> String {
    format!(
        "(document.querySelector(\"#figures tr[data-queue='{queue}'][data-period='{period}'] td[data-label='{label}']\") || {{}}).textContent"
    )
}

#[actix_rt::test]
async fn http_browser_wallboard_period_figures_and_chart() {
    let mut config = crate::util::http_config(3_600_000, 3_600_000);
    config.reports.short_abandon_ms = 500;
    config
        .reports
        .queue_service_level_ms
        .insert("sales".into(), 30_000);
    config.contact_center.queues[0].max_wait_ms = 1_000;
    for u in &mut config.users {
        if u.id == "ann" {
            u.name = Some("Ann Smith".into());
        }
    }
    let t = HttpTest::start(config).await;
    let b = Browser::start().await;
    b.goto(&t.url("/wallboard")).await;
    b.login("sue").await;
    b.wait(
        "figures loaded",
        "document.querySelectorAll('#figures tr').length === 2",
    )
    .await;

    // No agent: a short abandon (100 ms) and a call that times out (1 s).
    let sim = t.running.sim.as_ref().expect("sim");
    for patience_ms in [Some(100), None] {
        sim.send(edgecc_actors::sim::PlaceCall(edgecc_actors::sim::Caller {
            patience_ms,
            ..edgecc_actors::sim::Caller::new("+15550000009", "+18005550100")
        }))
        .await
        .expect("place call");
    }
    // 0 answered of 2 offered less 1 short abandon: 0 %, not "—" nor 100 %.
    b.wait(
        "today's service level in the queue table",
        "document.querySelector(\"#queues tr[data-queue='sales'] td[data-label='Service level']\").textContent === '0% in 30s'",
    )
    .await;
    // Its colour threshold: below 60 % is "bad" (red), not "good" nor "warn".
    assert_eq!(
        b.js("return document.querySelector(\"#queues tr[data-queue='sales'] td[data-label='Service level']\").className")
            .await,
        json!("num bad")
    );
    for (label, want) in [
        ("Offered", "2"),
        ("Abandoned", "1 (1 short)"),
        ("Timed out", "1"),
        ("Service level", "0% in 30s"),
    ] {
        assert_eq!(
            b.js(&format!("return {}", figure("sales", "today", label)))
                .await,
            json!(want),
            "{label}"
        );
    }
    let formula = b
        .js("return document.getElementById('formula').textContent")
        .await;
    assert!(
        formula.as_str().is_some_and(|f| f
            .contains("answered within the queue's threshold / (offered − short abandons)")
            && f.contains("0.5 s")),
        "{formula}"
    );
    // The chart: one bar (the time-out's; the short abandon is red) per
    // call kind in the current 15 minutes.
    assert_eq!(
        b.js("return document.querySelectorAll(\"#charts svg[data-queue='sales'] rect\").length")
            .await,
        json!(2)
    );
    b.screenshot("20-wallboard-figures").await;

    // Ann, shown by her name, is forced Not Ready for lunch.
    let ann = t.login("ann").await;
    for state in ["login", "ready"] {
        let (s, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(&ann),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!(s, 200, "{state}: {v}");
    }
    b.wait("wallboard ready", &wall_state("ann", "ready")).await;
    assert_eq!(
        b.js("return document.querySelector(\"#team tr[data-agent='ann'] th\").textContent")
            .await,
        json!("Ann Smith ann")
    );
    b.click("button[aria-label='Force Not Ready ann']").await;
    b.wait(
        "reason list",
        "!!document.querySelector(\"select[aria-label='Reason for ann']\")",
    )
    .await;
    assert_eq!(
        b.js("return [...document.querySelector(\"select[aria-label='Reason for ann']\").options].map((o) => o.value).join(',')")
            .await,
        json!("break,lunch,")
    );
    b.screenshot("22-wallboard-reason").await;
    b.click("select[aria-label='Reason for ann'] option[value='lunch']")
        .await;
    b.click("button[aria-label='Set Not Ready ann']").await;
    b.wait("forced not ready", &wall_state("ann", "not_ready"))
        .await;
    b.wait(
        "the reason shows",
        "document.querySelector(\"#team tr[data-agent='ann'] .badge\").textContent === 'not ready (lunch)'",
    )
    .await;
    t.wait_me(&ann, "ann sees lunch", |v| v["agent"]["reason"] == "lunch")
        .await;
    b.size(414, 900).await;
    b.wait("resized", "document.documentElement.clientWidth <= 414")
        .await;
    let out = b.off_screen().await;
    b.screenshot("21-wallboard-figures-phone").await;
    assert_eq!(out, json!([]), "wallboard figures at 414 px");
    assert_eq!(b.console_errors(&[]).await, Vec::<String>::new());
    b.quit().await;
    t.http.stop().await;
}
