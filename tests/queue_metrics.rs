//! The per-queue call figures of `/metrics` (issue 19): waits to answer,
//! abandon or time-out in a histogram whose buckets include the queue's
//! service-level threshold from `[reports]`, and ended calls by queue and
//! terminal reason, scraped over HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::util::http_config;

/// Goal: after scripted calls, the wait histogram of the queue counts them,
/// has a bucket at the queue's own threshold holding the calls that waited
/// less, names that bucket in the threshold gauge, and the ended counter
/// counts them by reason. Method: the whole system on the simulated PBX,
/// `[reports.queues.sales] service_level_ms = 250`, no agent logged in,
/// two callers giving up after 100 ms and 700 ms; `/metrics` scraped.
#[actix_rt::test]
async fn queue_waits_have_a_bucket_at_the_threshold_and_count_abandons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = http_config(3_600_000, 3_600_000);
    config
        .reports
        .queue_service_level_ms
        .insert("sales".into(), 250);
    let storage = edgecc::system::storage::open_storage(&config, dir.path()).expect("storage");
    let system = edgecc::system::SystemParts::new(config, storage)
        .serve_http(None)
        .start()
        .await
        .expect("system");
    let base = format!("http://{}", system.http.as_ref().expect("http").local_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let sim = system.running.sim.as_ref().expect("sim");
    for (ani, patience_ms) in [("+15550001111", 100), ("+15550002222", 700)] {
        sim.send(edgecc_actors::sim::PlaceCall(edgecc_actors::sim::Caller {
            patience_ms: Some(patience_ms),
            ..edgecc_actors::sim::Caller::new(ani, "+18005550100")
        }))
        .await
        .expect("place call");
    }
    let line = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let mut res = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("scrape");
        assert_eq!(res.status().as_u16(), 200);
        let body = res.body().limit(4 * 1024 * 1024).await.expect("body");
        let text = String::from_utf8_lossy(&body).into_owned();
        let count = line(&text, "edgecc_queue_call_wait_seconds_count{queue=\"sales\"}");
        if count == Some(2.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "waits not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let q = "queue=\"sales\"";
    for (prefix, want) in [
        (
            format!("edgecc_queue_call_wait_seconds_bucket{{{q},le=\"0.25\"}}"),
            1.0,
        ),
        (
            format!("edgecc_queue_call_wait_seconds_bucket{{{q},le=\"1\"}}"),
            2.0,
        ),
        (
            format!("edgecc_queue_service_level_threshold_seconds{{{q},le=\"0.25\"}}"),
            0.25,
        ),
        (
            format!("edgecc_queue_calls_ended_total{{{q},outcome=\"abandoned\"}}"),
            2.0,
        ),
        (
            format!("edgecc_queue_calls_ended_total{{{q},outcome=\"completed\"}}"),
            0.0,
        ),
        (format!("edgecc_queue_handle_seconds_count{{{q}}}"), 0.0),
    ] {
        assert_eq!(line(&text, &prefix), Some(want), "{prefix}:\n{text}");
    }
    system.shutdown().await;
}
