//! CRM sync drain benchmark: how fast does the sync worker empty an outbox
//! backlog into the CRM emulator, next to the emulator's own accept rate?
//!
//! Run: `cargo bench -p edgecc --bench crm_drain`
//! (env `EDGECC_BENCH_RECORDS` = backlog size, default 1,000,000;
//! `EDGECC_BENCH_BASELINE_RECORDS` = baseline requests, default min(N, 200,000);
//! `EDGECC_BENCH_BATCH_RECORDS` = backlog of the batch_max=50 row, default N,
//! 0 skips it; `EDGECC_BENCH_OUTAGE_RECORDS` = the outage backlog, default
//! 216,000; `EDGECC_BENCH_CONCURRENCY` = requests in flight, default 16).
//!
//! Everything runs in one `actix_rt::System` (the adapters and awc are
//! `!Send`). The emulator's HTTP server runs on its own worker thread; the
//! client side (sync worker or plain loop) on the system's thread; sled's
//! writer on its own thread. Each row gets a fresh emulator (so no row sees
//! another row's ids as duplicates) and, for sync rows, a fresh storage dir.
//!
//! The emulator stores at most `RECORDS_MAX` (200,000) records; later new
//! ones are counted in `dropped` and still answered 200, so for rate
//! measurement a bigger backlog is fine.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::Actor;
use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle};
use edgecc::crm::sync::{GetSyncStatus, SyncConfig, SyncWorker};
use edgecc::crm::transport::ANSWER_BODY_BYTES_MAX;
use edgecc::crm::webhook::{
    sign, WebhookAdapter, WebhookConfig, IDEMPOTENCY_HEADER, SIGNATURE_HEADER,
};
use edgecc::crm::wire;
use edgecc_actors::TokioClock;
use edgecc_storage::{NewRecord, Outbox, Record, RecordKind, Storage, StorageConfig};

/// The webhook secret shared by the emulator and the clients.
const SECRET: &[u8] = b"whsec_bench_crm_drain_0123456789";
/// Records per append (a multiple of 3, so no interaction spans two
/// batches appended by different tasks, which could reorder it).
const APPEND_BATCH: usize = 63;
/// Concurrent append tasks while filling.
const FILL_TASKS: usize = 4;
/// Target body size in bytes.
const BODY_BYTES: usize = 400;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// VmHWM / VmRSS in KiB from /proc/self/status.
fn proc_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The record kind of the `i`-th record of a run: each interaction is
/// create, phone log, update.
fn kind_of(i: usize) -> RecordKind {
    match i % 3 {
        0 => RecordKind::InteractionCreate,
        1 => RecordKind::PhoneLogCreate,
        _ => RecordKind::InteractionUpdate,
    }
}

/// A realistic ~400-byte JSON body for record `i` of run `run`.
fn body_of(run: &str, i: usize, now_ms: u64) -> Vec<u8> {
    let call = i / 3;
    let mut s = format!(
        concat!(
            r#"{{"call_id":"{run}-call-{call:07}","direction":"inbound","queue":"support-en-{q}","#,
            r#""agent":"agent-{a:04}","caller":"+4930{c:08}","callee":"+493098765400","#,
            r#""state":"{st}","started_at_ms":{t},"wait_ms":{w},"talk_ms":{tk},"#,
            r#""variables":{{"customer_id":"CUST-{c:08}","language":"en","priority":"normal","#,
            r#""case":"CS{call:08}"}},"disposition":"resolved","notes":""#
        ),
        run = run,
        call = call,
        q = call % 7,
        a = call % 500,
        c = (call * 7919) % 100_000_000,
        st = kind_of(i).as_str(),
        t = now_ms,
        w = (call * 37) % 60_000,
        tk = (call * 101) % 600_000,
    );
    while s.len() < BODY_BYTES - 2 {
        s.push('x');
    }
    s.push_str("\"}");
    s.into_bytes()
}

fn new_record(run: &str, i: usize, now_ms: u64) -> NewRecord {
    NewRecord {
        correlation_id: format!("{run}-{i:08}"),
        interaction_key: format!("{run}-call-{:07}", i / 3),
        kind: kind_of(i),
        body: body_of(run, i, now_ms),
        created_at_ms: now_ms,
    }
}

/// Fills `outbox` with `n` records from `FILL_TASKS` concurrent tasks.
/// Returns the seconds it took.
async fn fill(outbox: &Outbox, run: &str, n: usize) -> f64 {
    let started = Instant::now();
    let now = edgecc::clock::now_ms();
    let next = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for _ in 0..FILL_TASKS {
        let next = Rc::clone(&next);
        let outbox = outbox.clone();
        let run = run.to_string();
        tasks.push(actix_rt::spawn(async move {
            loop {
                let from = next.get();
                if from >= n {
                    break;
                }
                let to = (from + APPEND_BATCH).min(n);
                next.set(to);
                let batch: Vec<NewRecord> = (from..to).map(|i| new_record(&run, i, now)).collect();
                outbox
                    .append_batch(batch)
                    .await
                    .map_err(|e| e.failure)
                    .expect("append_batch");
            }
        }));
    }
    for t in tasks {
        t.await.expect("fill task");
    }
    started.elapsed().as_secs_f64()
}

/// One row of the result table.
struct Row {
    name: String,
    records: usize,
    secs: f64,
    fill_secs: Option<f64>,
    note: String,
}

async fn emulator() -> EmulatorHandle {
    EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(SECRET.to_vec()),
        ..Default::default()
    })
    .await
    .expect("emulator start")
}

/// The plain HTTP loop: `m` signed single-document POSTs, `concurrency` in
/// flight, same wire documents and headers as `WebhookAdapter` (batch 1).
async fn baseline(m: usize, concurrency: usize) -> Row {
    let emu = emulator().await;
    let url = emu.webhook_url();
    let client = awc::Client::builder()
        .connector(
            awc::Connector::new()
                .timeout(Duration::from_millis(5_000))
                .limit(edgecc::net::CONNECTIONS_MAX),
        )
        .timeout(Duration::from_millis(10_000))
        .disable_redirects()
        .finish();
    let now = edgecc::clock::now_ms();
    let next = Rc::new(Cell::new(0usize));
    let errors = Rc::new(Cell::new(0u64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, errors, client, url) = (
            Rc::clone(&next),
            Rc::clone(&errors),
            client.clone(),
            url.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            loop {
                let i = next.get();
                if i >= m {
                    break;
                }
                next.set(i + 1);
                let new = new_record("base", i, now);
                let record = Record {
                    seq: i as u64 + 1,
                    correlation_id: new.correlation_id,
                    interaction_key: new.interaction_key,
                    kind: new.kind,
                    body: new.body,
                    created_at_ms: new.created_at_ms,
                    attempts: 0,
                    next_attempt_at_ms: 0,
                    last_error: None,
                };
                let body = wire::to_json(&record);
                let t = edgecc::clock::now_ms() / 1000;
                let sent = client
                    .post(&url)
                    .insert_header(("Content-Type", "application/json"))
                    .insert_header((IDEMPOTENCY_HEADER, record.correlation_id.as_str()))
                    .insert_header((SIGNATURE_HEADER, sign(SECRET, t, &body)))
                    .send_body(body)
                    .await;
                match sent {
                    Ok(mut resp) => {
                        let ok = resp.status().as_u16() == 200;
                        let read = resp.body().limit(ANSWER_BODY_BYTES_MAX).await;
                        if !ok || read.is_err() {
                            errors.set(errors.get() + 1);
                        }
                    }
                    Err(_) => errors.set(errors.get() + 1),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("baseline task");
    }
    let secs = started.elapsed().as_secs_f64();
    let st = emu.stats();
    emu.stop().await;
    Row {
        name: format!("plain awc loop (c={concurrency})"),
        records: m,
        secs,
        fill_secs: None,
        note: format!(
            "errors {}, emulator: requests {} stored {} dropped {} rejected {} dup {}",
            errors.get(),
            st.requests,
            st.records,
            st.dropped,
            st.rejected,
            st.duplicates
        ),
    }
}

/// Fills a fresh outbox with `n` records and drains it with a real
/// `SyncWorker` + `WebhookAdapter` into a fresh emulator.
async fn drain(
    name: &str,
    run: &str,
    n: usize,
    batch_max: usize,
    concurrency: usize,
    root: &Path,
    keep: &mut Vec<Storage>,
) -> Row {
    let dir = root.join(run);
    let storage = Storage::open(&dir, StorageConfig::default()).expect("open storage");
    let outbox = storage.outbox();
    let fill_secs = fill(&outbox, run, n).await;
    let before = outbox.stats(edgecc::clock::now_ms()).expect("stats");
    assert_eq!(before.depth, n as u64, "backlog depth after fill");
    eprintln!(
        "  [{name}] filled {n} records in {fill_secs:.1} s ({:.0} rec/s), {} MiB on disk, RSS {} MiB",
        n as f64 / fill_secs,
        before.bytes_on_disk >> 20,
        proc_kib("VmRSS:") >> 10
    );

    let emu = emulator().await;
    let secret_file = root.join(format!("{run}.secret"));
    std::fs::write(&secret_file, SECRET).expect("write secret");
    let adapter = WebhookAdapter::new(&WebhookConfig {
        url: emu.webhook_url(),
        secret_file: Some(secret_file),
        connect_timeout_ms: 5_000,
        request_timeout_ms: 10_000,
        batch_max,
    })
    .expect("adapter");
    let seed = 0x5eed_u64 ^ n as u64;
    let started = Instant::now();
    let worker = SyncWorker::new(
        outbox.clone(),
        Rc::new(adapter),
        TokioClock::shared(edgecc::clock::now_ms()),
        SyncConfig {
            concurrency,
            ..Default::default()
        },
        None,
        seed,
    )
    .start();
    let mut last_report = Instant::now();
    let secs = loop {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let st = outbox.stats(edgecc::clock::now_ms()).expect("stats");
        if st.depth == 0 {
            break started.elapsed().as_secs_f64();
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            eprintln!(
                "  [{name}] {:.0} s: depth {} in flight {} ({:.0} rec/s so far), load {}",
                started.elapsed().as_secs_f64(),
                st.depth,
                st.in_flight,
                (n as u64 - st.depth) as f64 / started.elapsed().as_secs_f64(),
                load_average()
            );
        }
    };
    let sync = worker.send(GetSyncStatus).await.expect("sync status");
    let after = outbox.stats(edgecc::clock::now_ms()).expect("stats");
    let st = emu.stats();
    emu.stop().await;
    // The worker keeps polling an empty outbox; keep the storage open until
    // the end so its directory stays valid.
    keep.push(storage);
    Row {
        name: name.to_string(),
        records: n,
        secs,
        fill_secs: Some(fill_secs),
        note: format!(
            "delivered {} retried {} dead {} (outbox dead {}); emulator: requests {} stored {} dropped {} rejected {} dup {}; p50/p99 created->delivered {}/{} ms",
            sync.delivered,
            sync.retried,
            sync.dead_lettered,
            after.dead_letters,
            st.requests,
            st.records,
            st.dropped,
            st.rejected,
            st.duplicates,
            sync.delivery_latency_p50_ms,
            sync.delivery_latency_p99_ms
        ),
    }
}

fn main() {
    let n = env_usize("EDGECC_BENCH_RECORDS", 1_000_000);
    let m = env_usize("EDGECC_BENCH_BASELINE_RECORDS", n.min(200_000));
    let batch_n = env_usize("EDGECC_BENCH_BATCH_RECORDS", n);
    let outage_n = env_usize("EDGECC_BENCH_OUTAGE_RECORDS", 3600 * 20 * 3);
    let concurrency = env_usize("EDGECC_BENCH_CONCURRENCY", 16);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    println!(
        "crm_drain: backlog {n}, baseline {m}, batch-50 backlog {batch_n}, outage backlog {outage_n}, concurrency {concurrency}, body ~{BODY_BYTES} B, load avg at start {}",
        load_average()
    );

    let rows = actix_rt::System::new().block_on(async move {
        let mut keep = Vec::new();
        let mut rows = Vec::new();

        eprintln!("baseline: {m} plain POSTs...");
        let base = baseline(m, concurrency).await;
        eprintln!(
            "  {:.1} s, {:.0} rec/s; {}",
            base.secs,
            m as f64 / base.secs,
            base.note
        );
        rows.push(base);

        eprintln!("sync worker, batch_max 1, backlog {n}...");
        rows.push(
            drain(
                "SyncWorker batch_max=1",
                "b1",
                n,
                1,
                concurrency,
                &root,
                &mut keep,
            )
            .await,
        );

        if batch_n > 0 {
            eprintln!("sync worker, batch_max 50, backlog {batch_n}...");
            rows.push(
                drain(
                    "SyncWorker batch_max=50",
                    "b50",
                    batch_n,
                    50,
                    concurrency,
                    &root,
                    &mut keep,
                )
                .await,
            );
        }

        if outage_n > 0 {
            eprintln!("outage backlog (1 h x 20 calls/s x 3 records) = {outage_n}...");
            rows.push(
                drain(
                    "outage 1h@20cps, batch_max=1",
                    "out",
                    outage_n,
                    1,
                    concurrency,
                    &root,
                    &mut keep,
                )
                .await,
            );
        }
        drop(keep);
        rows
    });

    let base_rate = rows[0].records as f64 / rows[0].secs;
    println!();
    println!("| run | records | fill s | drain s | rec/s | ratio to plain loop |");
    println!("|-----|--------:|-------:|--------:|------:|--------------------:|");
    for r in &rows {
        let rate = r.records as f64 / r.secs;
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.2} |",
            r.name,
            r.records,
            r.fill_secs.map_or("-".to_string(), |f| format!("{f:.1}")),
            r.secs,
            rate,
            rate / base_rate
        );
    }
    println!();
    for r in &rows {
        println!("- {}: {}", r.name, r.note);
    }
    println!();
    println!(
        "VmHWM {} MiB (whole process: emulator with up to 200,000 stored documents, sled caches, clients); load avg at end {}",
        proc_kib("VmHWM:") >> 10,
        load_average()
    );
    drop(tmp);
}
