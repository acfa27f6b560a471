//! A wrap-up code sent after the wrap-up ended (issue 16, item 7; the
//! desktop side is issue 20's): over HTTP on 127.0.0.1 with the simulated
//! PBX. The code is still recorded while the ended call lingers (the agent
//! ended its wrap-up before saving the code); once it cannot be, the answer
//! says the wrap-up is over (409), not that the call is someone else's.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::HttpTest;

/// Long enough not to expire during a test.
const LONG_MS: u64 = 3_600_000;

/// `ann` takes a call on her desktop and hangs up: she is in wrap-up.
/// Answers the call id.
async fn call_into_wrap_up(t: &HttpTest, ann: &str) -> String {
    for state in ["login", "ready"] {
        let (s, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(ann),
                Some(json!({"state": state})),
            )
            .await;
        assert_eq!(s, 200, "{state}: {v}");
    }
    t.phone_rings("1001", 1).await;
    let call = t.place_call("+15550002000").await;
    t.wait_me(ann, "offer", |v| v["offer"] == true).await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/accept"),
            Some(ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(ann, "talking", |v| v["agent"]["state"] == "talking")
        .await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/hangup"),
            Some(ann),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(ann, "wrap-up", |v| v["agent"]["state"] == "wrap_up")
        .await;
    call
}

/// The pending outbox records, as the admin API lists them.
async fn outbox(t: &HttpTest, root: &str) -> Value {
    let (s, v) = t
        .call(
            "GET",
            "/api/v1/admin/outbox/records?limit=1000",
            Some(root),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Ended the wrap-up first, then saved the code: recorded (200), and the
/// interaction's update carries it.
#[actix_rt::test]
async fn a_code_after_ending_the_wrap_up_is_kept() {
    let t = HttpTest::start(crate::util::http_config(LONG_MS, LONG_MS)).await;
    let ann = t.login("ann").await;
    let call = call_into_wrap_up(&t, &ann).await;
    let (s, v) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["state"], "ready");
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/wrap_up"),
            Some(&ann),
            Some(json!({"code": "late-sale-7"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // The append is queued for the writer's next group commit: poll.
    let root = t.login("root").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = outbox(&t, &root).await;
        if records.to_string().contains("late-sale-7") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the code never reached the outbox: {records}"
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    // Another agent still may not.
    let bob = t.login("bob").await;
    let (s, v) = t
        .call(
            "POST",
            &format!("/api/v1/calls/{call}/wrap_up"),
            Some(&bob),
            Some(json!({"code": "bob"})),
        )
        .await;
    assert!(s == 403 || s == 404, "{s} {v}");
    t.http.stop().await;
}

/// Once the ended call was let go (its wrap-up elapsed and the linger
/// after it), a code answers 409 `wrap_up_over` with a clear message.
#[actix_rt::test]
async fn a_code_once_nothing_can_keep_it_says_the_wrap_up_is_over() {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    config.contact_center.queues[0].wrap_up_ms = 200;
    let t = HttpTest::start(config).await;
    let ann = t.login("ann").await;
    let call = call_into_wrap_up(&t, &ann).await;
    t.wait_me(&ann, "ready after the wrap-up", |v| {
        v["agent"]["state"] == "ready"
    })
    .await;
    // The ended call lingers 1 s past the longest wrap-up of its agents.
    let path = format!("/api/v1/calls/{call}/wrap_up");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (s, v) = loop {
        let (s, v) = t
            .call("POST", &path, Some(&ann), Some(json!({"code": "too-late"})))
            .await;
        if s != 200 || std::time::Instant::now() > deadline {
            break (s, v);
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "wrap_up_over", "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("wrap-up") && m.contains("over")),
        "{v}"
    );
    t.http.stop().await;
}

/// Sales lists `sale` and `no-sale` and requires one (issue 20).
fn coded_config(required: bool) -> edgecc::config::Config {
    let mut config = crate::util::http_config(LONG_MS, LONG_MS);
    config.contact_center.queues[0].wrap_up_codes = edgecc_actors::config::WrapUpCodes {
        codes: ["sale", "no-sale"]
            .iter()
            .map(|c| edgecc_actors::config::wrap_up::WrapUpCode {
                code: (*c).into(),
                label: format!("Label {c}"),
            })
            .collect(),
        required,
    };
    config
}

/// A queue's required code list over HTTP: the desktop snapshot carries
/// the codes and says one is owed; Finish (and Ready) without a code is
/// refused with a sentence a person reads (409 `wrap_up_code_required`);
/// an unlisted code is refused with the list (400); a listed code is
/// recorded and Finish then works.
#[actix_rt::test]
async fn a_required_code_list_is_enforced_over_http() {
    let t = HttpTest::start(coded_config(true)).await;
    let ann = t.login("ann").await;
    let call = call_into_wrap_up(&t, &ann).await;
    let (s, v) = t.call("GET", "/api/v1/me", Some(&ann), None).await;
    assert_eq!(s, 200, "{v}");
    let coding = &v["agent"]["detail"]["coding"];
    assert_eq!(coding["queue"], "sales", "{v}");
    assert_eq!(coding["owed"], true, "{v}");
    assert_eq!(coding["codes"][1]["code"], "no-sale", "{v}");
    assert_eq!(coding["codes"][1]["label"], "Label no-sale", "{v}");

    let (s, v) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "wrap_up_code_required", "{v}");
    assert_eq!(
        v["message"],
        "choose a wrap-up code first: calls of queue sales need one before the wrap-up ends"
    );
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/agent/state",
            Some(&ann),
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!((s, &v["error"]), (409, &json!("wrap_up_code_required")));

    let path = format!("/api/v1/calls/{call}/wrap_up");
    let (s, v) = t
        .call("POST", &path, Some(&ann), Some(json!({"code": "sold"})))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "wrap_up_code_not_listed", "{v}");
    assert_eq!(
        v["message"],
        "\"sold\" is not a wrap-up code of this queue; choose one of: sale, no-sale"
    );
    let (s, v) = t
        .call("POST", &path, Some(&ann), Some(json!({"code": "sale"})))
        .await;
    assert_eq!(s, 200, "{v}");
    t.wait_me(&ann, "code no longer owed", |v| {
        v["agent"]["detail"]["coding"]["owed"] == false
    })
    .await;
    let (s, v) = t
        .call("POST", "/api/v1/agent/wrap_up/end", Some(&ann), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"]["state"], "ready");
    t.http.stop().await;
}
