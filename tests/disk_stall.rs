//! A stalled disk at the daemon's level (issue 14): while the storage
//! writer's syncs block for seconds, calls on the simulated PBX are still
//! offered and answered, and once the disk answers every record of those
//! calls is in the outbox, once.
//!
//! The stall comes from the storage crate's test hook
//! (`Storage::inject_sync_stall`, hidden from its docs and never called by
//! the daemon), on the storage the system runs on.

use std::time::{Duration, Instant};

use edgecc_actors::registry::Snapshot;
use serde_json::json;

use crate::util::{http_config, HttpTest};

/// Long token lifetime and desktop grace.
const LONG_MS: u64 = 3_600_000;
/// How long the stalled sync blocks, ms (the single writer waits behind
/// it, so every change does): well above the ~1 s the two calls take to
/// be connected on this harness without a stall.
const STALL_MS: u64 = 4_000;
/// How many syncs stall.
const STALLED_SYNCS: u64 = 1;

/// Logs `user` in and puts the agent Ready.
async fn ready(t: &HttpTest, user: &str) -> String {
    let token = t.login(user).await;
    for s in ["login", "ready"] {
        let (status, v) = t
            .call(
                "POST",
                "/api/v1/agent/state",
                Some(&token),
                Some(json!({"state": s})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    token
}

/// Goal: a disk that stops answering for seconds does not stop routing,
/// and loses nothing. Method: two agents Ready; the next log sync stalls
/// 4 s; two calls arrive; both are connected to an agent well
/// before the first stall ends, while the outbox still shows none of the
/// calls' records durable (proof the disk was stalled while they were
/// routed); the desktops show "talking" (after at most the accept's
/// confirmation wait); once the stalls pass, the outbox holds each call's
/// interaction and phone log exactly once.
#[actix_rt::test]
async fn a_stalled_disk_does_not_stop_routing_and_loses_nothing() {
    let t = HttpTest::start(http_config(LONG_MS, LONG_MS)).await;
    let ann = ready(&t, "ann").await;
    let bob = ready(&t, "bob").await;
    let outbox = t.storage.outbox();
    let before = outbox.stats(0).expect("stats").depth;

    t.storage.inject_sync_stall(STALL_MS, STALLED_SYNCS);
    let started = Instant::now();
    let calls = [
        t.place_call("+15550001").await,
        t.place_call("+15550002").await,
    ];
    // Routed: both calls offered, answered at the PBX and connected to an
    // agent, while the disk is stalled.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = t
            .running
            .registry
            .send(Snapshot { with_queues: false })
            .await
            .expect("snapshot");
        let connected = calls.iter().all(|id| {
            snap.calls
                .iter()
                .any(|c| c.call.0 == *id && c.phase == "connected" && !c.parties.is_empty())
        });
        if connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls not connected: {:?}",
            snap.calls
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let routed_in = started.elapsed();
    assert!(
        routed_in < Duration::from_millis(STALL_MS / 2),
        "both calls connected in {routed_in:?}, during the stall"
    );
    assert_eq!(
        outbox.stats(0).expect("stats").depth,
        before,
        "no record durable yet: the disk was stalled while the calls were routed"
    );
    // The desktops hear "talking" once the records are durable or
    // `accept_confirm_wait_ms` passed, whichever is first.
    for token in [&ann, &bob] {
        t.wait_me(token, "talking", |me| me["agent"]["state"] == "talking")
            .await;
    }

    // The disk answers again: every record of both calls arrives, once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let expected = before + 2 * calls.len() as u64;
    while outbox.stats(0).expect("stats").depth < expected {
        assert!(Instant::now() < deadline, "records did not arrive");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(STALL_MS),
        "the records waited for the disk"
    );
    let records = outbox.list(0, 1_000).expect("list");
    for call in &calls {
        let mine: Vec<&str> = records
            .iter()
            .filter(|r| r.interaction_key == *call)
            .map(|r| r.kind.as_str())
            .collect();
        assert_eq!(
            mine,
            ["interaction.create", "phone_log.create"],
            "call {call}: {records:?}"
        );
    }
    assert_eq!(records.len() as u64, expected, "{records:?}");
    t.http.stop().await;
}
