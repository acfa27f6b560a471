//! The per-queue call figures of `/metrics` (issue 19): waits to answer,
//! abandon or time-out in a histogram whose buckets include the queue's
//! service-level threshold from `[reports]`, and ended calls by queue and
//! terminal reason, scraped over HTTP on 127.0.0.1; the whole exposition
//! passes `promtool check metrics`; every metric the shipped Grafana
//! dashboard (`deploy/grafana/edgecc.json`) queries is in it.

use std::time::{Duration, Instant};

use crate::util::http_config;

/// Goal: after scripted calls, the wait histogram of the queue counts them,
/// has a bucket at the queue's own threshold holding the calls that waited
/// less, names that bucket in the threshold gauge, and the ended counter
/// counts them by reason; the service level's counters count them as the
/// reports do (offered, answered within the threshold, short abandons).
/// Method: the whole system on the simulated PBX, `[reports.queues.sales]
/// service_level_ms = 250`, `short_abandon_ms = 500`, no agent logged in,
/// two callers giving up after 100 ms and 700 ms; `/metrics` scraped.
#[actix_rt::test]
async fn queue_waits_have_a_bucket_at_the_threshold_and_count_abandons() {
    let text = scrape_after_two_abandons().await;
    let line = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
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
            format!("edgecc_queue_service_level_threshold_seconds{{{q},bucket=\"0.25\"}}"),
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
        // The reports' service level: 2 offered, none answered, the
        // 100 ms abandon short (under 500 ms), the 700 ms one not.
        (format!("edgecc_queue_calls_offered_total{{{q}}}"), 2.0),
        (
            format!("edgecc_queue_calls_answered_within_threshold_total{{{q}}}"),
            0.0,
        ),
        (
            format!("edgecc_queue_calls_short_abandoned_total{{{q}}}"),
            1.0,
        ),
    ] {
        assert_eq!(line(&text, &prefix), Some(want), "{prefix}:\n{text}");
    }
}

/// Goal: what users scrape is clean Prometheus text. Method: the scrape of
/// the scenario above piped into `promtool check metrics` (Debian's
/// `prometheus`; `.ci/install-metrics-tools.sh`). Without promtool the test
/// fails under `CI=true` and is skipped with a message otherwise.
#[actix_rt::test]
async fn the_exposition_passes_promtool_check_metrics() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool not runnable under CI=true ({e}): run .ci/install-metrics-tools.sh")
        }
        Err(e) => {
            eprintln!("skipped: promtool not runnable ({e}); bash .ci/install-metrics-tools.sh");
            return;
        }
    };
    let text = scrape_after_two_abandons().await;
    assert!(
        text.contains("edgecc_queue_call_wait_seconds_bucket"),
        "{text}"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Goal: the shipped Grafana dashboard queries only metrics `/metrics`
/// has. Method: every `edgecc_*` name in the dashboard's `expr`s looked up
/// among the sample names of the scenario's scrape.
#[actix_rt::test]
async fn the_grafana_dashboard_queries_only_exposed_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/edgecc.json");
    let raw = std::fs::read_to_string(path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&raw).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let used: std::collections::BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| {
            e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("edgecc_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    for name in [
        "edgecc_queue_call_wait_seconds_bucket",
        "edgecc_queue_calls_answered_within_threshold_total",
        "edgecc_queue_calls_offered_total",
        "edgecc_queue_calls_short_abandoned_total",
        "edgecc_queue_handle_seconds_sum",
        "edgecc_outbox_depth",
    ] {
        assert!(used.contains(name), "the dashboard should use {name}");
    }
    let text = scrape_after_two_abandons().await;
    let exposed: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &used {
        assert!(
            exposed.contains(name.as_str()),
            "the dashboard queries {name}, not in /metrics:\n{text}"
        );
    }
}

/// The system on the simulated PBX with `sales`' threshold at 250 ms,
/// short abandons under 500 ms, and two callers giving up after 100 ms and 700 ms; answers `/metrics` once
/// both waits are counted.
async fn scrape_after_two_abandons() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = http_config(3_600_000, 3_600_000);
    config
        .reports
        .queue_service_level_ms
        .insert("sales".into(), 250);
    config.reports.short_abandon_ms = 500;
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
        let count = line(
            &text,
            "edgecc_queue_call_wait_seconds_count{queue=\"sales\"}",
        );
        if count == Some(2.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "waits not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    system.shutdown().await;
    text
}
