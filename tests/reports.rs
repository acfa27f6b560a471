//! Reports over the real interfaces: a call's detail record written by the
//! running system through its storage, read back by
//! `GET /api/v1/reports/queues` on 127.0.0.1 (JSON and CSV), and by
//! `edgecc report` through the daemon's admin socket and `--offline` on
//! the data directory.

use std::time::{Duration, Instant};

use crate::util::{cli_on, http_config, stderr, stdout, Daemon, HTTP_TEST_PASSWORD};

/// `GET path` with a bearer token and an optional `Accept`; answers status,
/// content type and body.
async fn get(
    client: &awc::Client,
    url: &str,
    token: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let mut req = client
        .get(url)
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(a) = accept {
        req = req.insert_header(("Accept", a));
    }
    let mut res = req.send().await.expect("request");
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.body().limit(4 * 1024 * 1024).await.expect("body");
    (
        res.status().as_u16(),
        ctype,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn login(client: &awc::Client, base: &str, user: &str) -> String {
    let mut res = client
        .post(format!("{base}/api/v1/session"))
        .send_json(&serde_json::json!({"agent_id": user, "password": HTTP_TEST_PASSWORD}))
        .await
        .expect("login");
    let v: serde_json::Value = res.json().await.expect("login json");
    v["token"].as_str().expect("token").to_owned()
}

/// Sum of `field` over the rows of a report answer.
fn total(report: &serde_json::Value, field: &str) -> u64 {
    report["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r[field].as_u64()).sum())
        .unwrap_or(0)
}

/// Goal: a caller who gives up waiting shows in the queue report as
/// offered and a short abandon, with the service-level formula stated, in
/// JSON and in CSV; a wrong parameter is a 400 naming it and an agent
/// gets 403; after the system stops, `edgecc report --offline` on its
/// data directory reads the same record. Method: the whole system on the
/// simulated PBX with HTTP on 127.0.0.1, a call placed with 300 ms of
/// patience and no agent logged in.
#[test]
fn a_short_abandon_is_reported_over_http_and_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The system runs in its own actix system, dropped (with every actor
    // and storage handle) before the offline CLI opens the directory.
    let (from, to) = actix_rt::System::new().block_on(serve_and_check(&data));
    let socket = dir.path().join("none.sock");
    let args = [
        "report",
        "queues",
        "--offline",
        "--csv",
        "--interval",
        "1d",
        "--from",
    ];
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let mut all: Vec<&str> = args.to_vec();
    all.extend([from_s.as_str(), "--to", to_s.as_str()]);
    let out = cli_on(&data, &socket, &all);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The range is the hour either side of the call: across midnight UTC
    // it has two day rows, so the queue's rows are summed.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("sales,"))
        .map(|l| l.split(',').collect())
        .collect();
    assert!(!rows.is_empty(), "no sales row: {text}");
    // queue,start,start_ms,offered,answered,answered_within_threshold,abandoned,short_abandoned
    let sum = |i: usize| -> u64 {
        rows.iter()
            .map(|f| f[i].parse::<u64>().expect("a count"))
            .sum()
    };
    assert_eq!((sum(3), sum(4), sum(6), sum(7)), (1, 0, 1, 1), "{text}");
}

/// The HTTP part of the test above: answers the report's range.
async fn serve_and_check(data: &std::path::Path) -> (u64, u64) {
    let config = http_config(3_600_000, 3_600_000);
    let storage = edgecc::system::storage::open_storage(&config, data).expect("storage");
    let system = edgecc::system::SystemParts::new(config, storage)
        .serve_http(None)
        .start()
        .await
        .expect("system");
    let base = format!("http://{}", system.http.as_ref().expect("http").local_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let sue = login(&client, &base, "sue").await;
    let ann = login(&client, &base, "ann").await;
    let sim = system.running.sim.as_ref().expect("sim");
    sim.send(edgecc_actors::sim::PlaceCall(edgecc_actors::sim::Caller {
        patience_ms: Some(300),
        ..edgecc_actors::sim::Caller::new("+15550001111", "+18005550100")
    }))
    .await
    .expect("place call");

    let now = edgecc::clock::now_ms();
    let (from, to) = (now - 3_600_000, now + 3_600_000);
    let url = format!("{base}/api/v1/reports/queues?from={from}&to={to}&interval=1h");
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let (status, _, body) = get(&client, &url, &sue, None).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        if total(&v, "abandoned") == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "no abandon reported: {v:#}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        report["service_level_formula"],
        "answered within the queue's threshold / (offered - short abandons)"
    );
    assert_eq!(total(&report, "offered"), 1, "{report:#}");
    assert_eq!(total(&report, "short_abandoned"), 1, "300 ms < 5 s");
    assert_eq!(total(&report, "answered"), 0);
    let rows = report["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["queue"] == "sales"));
    let row = rows.iter().find(|r| r["offered"] == 1).unwrap();
    assert!(
        row["service_level_pct"].is_null(),
        "0 / (1 - 1) counts nothing"
    );

    let (status, ctype, csv) = get(&client, &url, &sue, Some("text/csv")).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("queue,start,start_ms,offered,answered,"));
    assert_eq!(lines.count(), rows.len());

    let agents = format!("{base}/api/v1/reports/agents?from={from}&to={to}");
    let (status, _, body) = get(&client, &agents, &sue, None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["agent"] == "ann"));

    let (status, _, _) = get(&client, &url, &ann, None).await;
    assert_eq!(status, 403, "agents do not read reports");
    let bad = format!("{base}/api/v1/reports/queues?from=yesterday&to={to}");
    let (status, _, body) = get(&client, &bad, &sue, None).await;
    assert_eq!(status, 400);
    assert!(body.contains("`from`"), "{body}");
    let backwards = format!("{base}/api/v1/reports/queues?from={to}&to={from}");
    assert_eq!(get(&client, &backwards, &sue, None).await.0, 400);

    system.shutdown().await;
    (from, to)
}

/// Goal: `edgecc report` asks the running daemon over its admin socket
/// and prints the JSON report with the formula; a bad `--from` is refused
/// naming the flag. Method: `edgecc run` on a fresh directory.
#[test]
fn report_through_the_daemon() {
    let d = Daemon::start_in(tempfile::tempdir().expect("tempdir"));
    let out = d.cli(&[
        "report",
        "agents",
        "--from",
        "2026-12-06",
        "--to",
        "2026-12-07",
        "--interval",
        "1d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["from"], "2026-12-06T00:00:00Z");
    assert_eq!(v["to"], "2026-12-07T00:00:00Z");
    assert_eq!(v["interval"], "1d");
    assert!(v["service_level_formula"]
        .as_str()
        .unwrap()
        .contains("short abandons"));
    assert_eq!(v["rows"], serde_json::json!([]), "no agents, no history");
    let out = d.cli(&["report", "queues", "--from", "soon", "--to", "2026-12-07"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--from"), "{}", stderr(&out));
}
