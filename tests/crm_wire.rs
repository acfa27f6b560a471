//! The CRM adapters' wire format and answer classification, against the CRM
//! emulator over real HTTP on 127.0.0.1.
//!
//! Each test starts its own emulator on port 0, builds an adapter with
//! short timeouts ([`TIMEOUT_MS`]; the ServiceNow tests through
//! [`super::sn_rig`]), switches the emulator's mode and checks
//! the [`Outcome`] the adapter reports and what reached the emulator.

use std::time::{Duration, Instant};

use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle, Mode};
use edgecc::crm::servicenow::{ServiceNowAuth, ServiceNowMode};
use edgecc::crm::sn_instance::{default_tables, TableDef};
use edgecc::crm::webhook::{verify_signature, WebhookAdapter, WebhookConfig};
use edgecc::crm::{wire, CrmAdapter, Outcome};
use edgecc_storage::{Record, RecordKind};

use super::sn_rig::{plain_rig, secret_file, sn_rig, SnRig};

/// Client timeouts in these tests: loopback answers in well under this.
const TIMEOUT_MS: u64 = 300;
/// How long a hung emulator holds a request: past [`TIMEOUT_MS`].
const HANG_MS: u64 = 1_500;
/// The webhook HMAC key used by the signed tests.
const SECRET: &[u8] = b"whsec_test";

/// A record of `interaction` with a small JSON body.
fn record(seq: u64, interaction: &str, kind: RecordKind, body: &str) -> Record {
    Record {
        seq,
        correlation_id: format!("edge-01:{interaction}:{}:{seq}", kind.as_str()),
        interaction_key: interaction.into(),
        kind,
        body: body.as_bytes().to_vec(),
        created_at_ms: 1_795_278_919_394,
        attempts: 0,
        next_attempt_at_ms: 0,
        last_error: None,
    }
}

/// A webhook adapter for `em` with test timeouts.
fn webhook(
    em: &EmulatorHandle,
    secret: Option<std::path::PathBuf>,
    batch_max: usize,
) -> WebhookAdapter {
    WebhookAdapter::new(&WebhookConfig {
        url: em.webhook_url(),
        secret_file: secret,
        connect_timeout_ms: TIMEOUT_MS,
        request_timeout_ms: TIMEOUT_MS,
        batch_max,
    })
    .expect("webhook adapter")
}

/// Delivers one record and returns its outcome.
async fn one(adapter: &dyn CrmAdapter, r: Record) -> Outcome {
    let mut out = adapter.deliver(vec![r]).await;
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// A single webhook request carries the documented headers, a signature
/// that `verify_signature` accepts, and the record's wire document.
#[actix_rt::test]
async fn webhook_single_record_wire_format() {
    let em = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(SECRET.to_vec()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let adapter = webhook(
        &em,
        Some(secret_file(dir.path(), "hmac", b"whsec_test\n")),
        1,
    );
    let r = record(
        1,
        "c-1",
        RecordKind::InteractionCreate,
        r#"{"caller":"+1555"}"#,
    );
    assert!(matches!(
        one(&adapter, r.clone()).await,
        Outcome::Delivered { .. }
    ));

    let req = em.last_request().expect("a request");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/webhook");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("idempotency-key"),
        Some(r.correlation_id.as_str())
    );
    let sig = req.header("edgecc-signature").expect("signature header");
    let now = edgecc::clock::now_ms() / 1000;
    assert_eq!(
        verify_signature(SECRET, sig, req.body.as_bytes(), now, 300),
        Ok(())
    );
    assert!(verify_signature(b"wrong", sig, req.body.as_bytes(), now, 300).is_err());
    assert_eq!(req.body.as_bytes(), wire::to_json(&r).as_slice());
    let doc: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(doc["id"], r.correlation_id.as_str());
    assert_eq!(doc["data"]["caller"], "+1555");
    assert_eq!(em.records().len(), 1);
    em.stop().await;
}

/// A wrong key is answered 401 by the emulator, which is permanent.
#[actix_rt::test]
async fn webhook_bad_signature_is_refused() {
    let em = EmulatorHandle::start(EmulatorConfig {
        webhook_secret: Some(SECRET.to_vec()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let adapter = webhook(
        &em,
        Some(secret_file(dir.path(), "hmac", b"not-the-key")),
        1,
    );
    let out = one(
        &adapter,
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    // Every record would fail the same way: delivery waits for the fix.
    assert!(
        matches!(out, Outcome::Retry { crm_down: true, .. }),
        "{out:?}"
    );
    assert_eq!(em.stats().rejected, 1);
    assert!(em.records().is_empty());
    em.stop().await;
}

/// Batch mode posts one JSON array without an Idempotency-Key; a batch
/// refused with 400 is re-sent record by record, so only the poison record
/// is permanent.
#[actix_rt::test]
async fn webhook_batch_and_poison_fallback() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 10);
    let batch = vec![
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
        record(2, "c-2", RecordKind::InteractionCreate, "{}"),
    ];
    let out = adapter.deliver(batch.clone()).await;
    assert_eq!(out, vec![Outcome::Delivered { link: None }; 2]);
    let req = em.last_request().unwrap();
    assert!(req.header("idempotency-key").is_none());
    assert_eq!(req.body.as_bytes(), wire::to_json_array(&batch).as_slice());

    em.set_mode(Mode::Reject {
        pattern: "poison".into(),
    })
    .await
    .unwrap();
    let batch = vec![
        record(3, "c-3", RecordKind::InteractionCreate, "{}"),
        record(
            4,
            "c-4",
            RecordKind::InteractionCreate,
            r#"{"note":"poison"}"#,
        ),
        record(5, "c-5", RecordKind::InteractionCreate, "{}"),
    ];
    let out = adapter.deliver(batch).await;
    assert!(matches!(out[0], Outcome::Delivered { .. }));
    assert!(
        matches!(out[1], Outcome::Permanent { status: 400, .. }),
        "{:?}",
        out[1]
    );
    assert!(matches!(out[2], Outcome::Delivered { .. }));
    assert_eq!(em.records().len(), 4);
    em.stop().await;
}

/// The same record delivered twice is stored once and counted as a
/// duplicate; per-interaction order is the order of first arrival.
#[actix_rt::test]
async fn webhook_duplicates_and_order() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 1);
    let create = record(1, "c-1", RecordKind::InteractionCreate, "{}");
    let update = record(2, "c-1", RecordKind::InteractionUpdate, r#"{"hold":true}"#);
    for r in [create.clone(), update.clone(), create.clone()] {
        assert!(matches!(one(&adapter, r).await, Outcome::Delivered { .. }));
    }
    assert_eq!(em.duplicates(), 1);
    assert_eq!(
        em.order("c-1"),
        vec![create.correlation_id, update.correlation_id]
    );
    em.stop().await;
}

/// Each answer class lands in its documented outcome.
#[actix_rt::test]
async fn webhook_answer_classes() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 1);
    let create = || record(1, "c-1", RecordKind::InteractionCreate, "{}");
    let update = || record(2, "c-1", RecordKind::InteractionUpdate, "{}");
    let status = |status: u16, body: &str| Mode::Status {
        status,
        body: body.into(),
    };

    em.set_mode(status(409, "conflict")).await.unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Delivered { .. }
    ));
    assert!(matches!(
        one(&adapter, update()).await,
        Outcome::Retry {
            crm_down: false,
            ..
        }
    ));
    em.set_mode(status(404, "no such route")).await.unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Retry { crm_down: true, .. }
    ));
    em.set_mode(status(400, "Record already exists"))
        .await
        .unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Delivered { .. }
    ));
    assert!(matches!(
        one(&adapter, update()).await,
        Outcome::Permanent { status: 400, .. }
    ));
    em.set_mode(status(403, "forbidden by ACL")).await.unwrap();
    assert_eq!(
        one(&adapter, create()).await,
        Outcome::Permanent {
            status: 403,
            reason: "forbidden by ACL".into()
        }
    );
    for s in [500, 503, 408] {
        em.set_mode(status(s, "down")).await.unwrap();
        let out = one(&adapter, create()).await;
        assert!(
            matches!(out, Outcome::Retry { crm_down: true, .. }),
            "{s}: {out:?}"
        );
    }
    em.set_mode(Mode::RetryAfter { secs: 7 }).await.unwrap();
    match one(&adapter, create()).await {
        Outcome::Retry {
            retry_after,
            crm_down,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(crm_down);
        }
        other => panic!("{other:?}"),
    }
    em.stop().await;
}

/// A closed listener is a retry with crm_down; the emulator listens again
/// on the same port and delivery resumes.
#[actix_rt::test]
async fn refused_connection_then_recovery() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 1);
    let r = || record(1, "c-1", RecordKind::InteractionCreate, "{}");
    assert!(matches!(
        one(&adapter, r()).await,
        Outcome::Delivered { .. }
    ));
    em.set_mode(Mode::Refuse { for_ms: None }).await.unwrap();
    let out = one(&adapter, r()).await;
    assert!(
        matches!(out, Outcome::Retry { crm_down: true, .. }),
        "{out:?}"
    );
    em.set_mode(Mode::Normal).await.unwrap();
    // A loaded machine may need a second attempt while the new listener's
    // worker starts (the sync worker retries the same way).
    let mut out = one(&adapter, r()).await;
    for _ in 0..2 {
        if matches!(out, Outcome::Delivered { .. }) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        out = one(&adapter, r()).await;
    }
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    em.stop().await;
}

/// A CRM that never answers is cut off by the request timeout.
#[actix_rt::test]
async fn hang_times_out() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 1);
    em.set_mode(Mode::Hang { ms: Some(HANG_MS) }).await.unwrap();
    let started = Instant::now();
    let out = one(
        &adapter,
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    assert!(
        matches!(out, Outcome::Retry { crm_down: true, .. }),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(HANG_MS),
        "{:?}",
        started.elapsed()
    );
    em.stop().await;
}

/// The HTTP control endpoints switch the mode (including a timed refusal,
/// which ends by itself) and report stats.
#[actix_rt::test]
async fn control_endpoints() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let adapter = webhook(&em, None, 1);
    let client = awc::Client::default();
    let post = |mode: &'static str| {
        client
            .post(format!("{}/_emulator/mode", em.url()))
            .insert_header(("Content-Type", "application/json"))
            .send_body(mode)
    };
    assert_eq!(
        post(r#"{"mode":"status","status":503}"#)
            .await
            .unwrap()
            .status(),
        202
    );
    actix_rt::time::sleep(Duration::from_millis(20)).await;
    let out = one(
        &adapter,
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    assert!(matches!(out, Outcome::Retry { crm_down: true, .. }));
    let mut resp = client
        .get(format!("{}/_emulator/stats", em.url()))
        .send()
        .await
        .unwrap();
    let stats: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(stats["mode"]["mode"], "status");
    assert_eq!(stats["requests"], 1);

    assert_eq!(
        post(r#"{"mode":"refuse","for_ms":300}"#)
            .await
            .unwrap()
            .status(),
        202
    );
    actix_rt::time::sleep(Duration::from_millis(150)).await;
    let out = one(
        &adapter,
        record(2, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    assert!(
        matches!(out, Outcome::Retry { crm_down: true, .. }),
        "{out:?}"
    );
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(em.mode(), Mode::Normal);
    let out = one(
        &adapter,
        record(3, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    em.stop().await;
}

/// Import Set mode: flat string rows with Basic auth; the interaction's
/// create and update coalesce on one target row, a replayed create is
/// ignored and counted as a duplicate, and order is kept. The transform
/// writes only what the shipped field maps map: none of the record's own
/// keys reaches the interaction (issue 22: the emulator used to copy every
/// staging column into it).
#[actix_rt::test]
async fn servicenow_import_set_upserts() {
    let basic = EmulatorConfig {
        basic: Some(("edgecc".into(), "pw".into())),
        ..EmulatorConfig::default()
    };
    let SnRig {
        em,
        adapter,
        dir: _dir,
        ..
    } = sn_rig(basic, ServiceNowMode::ImportSet, |_, _| {}).await;
    let create = record(
        1,
        "c-1",
        RecordKind::InteractionCreate,
        r#"{"ani":"+1555","direction":"inbound","reason":"accepted"}"#,
    );
    let log = record(2, "c-1", RecordKind::PhoneLogCreate, r#"{"duration_s":30}"#);
    let update = record(
        3,
        "c-1",
        RecordKind::InteractionUpdate,
        r#"{"event":"ended","terminal":{"reason":"completed"},"seq":1}"#,
    );
    for r in [create.clone(), log.clone(), update.clone()] {
        match one(&adapter, r).await {
            Outcome::Delivered { link: Some(link) } => assert!(link.contains("/api/now/table/")),
            other => panic!("{other:?}"),
        }
    }
    let req = em.last_request().unwrap();
    assert_eq!(req.path, "/api/now/import/u_edgecc_interaction_import");
    assert!(req.header("authorization").unwrap().starts_with("Basic "));
    let row: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(row["u_sequence"], "3");
    assert_eq!(row["u_state"], "closed_complete");
    assert_eq!(row["u_kind"], "interaction.update");
    // ServiceNow's own date-time format, UTC (issue 22, point 9).
    assert_eq!(row["u_created_at"], "2026-11-21 16:35:19");

    assert!(matches!(
        one(&adapter, create.clone()).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(em.duplicates(), 1);
    let rows = em.table_rows("interaction");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "closed_complete");
    assert_eq!(rows[0]["caller_phone_number"], "+1555");
    assert_eq!(rows[0]["u_edgecc_call_id"], "c-1");
    assert_eq!(rows[0]["u_edgecc_sequence"], "3");
    let copied: Vec<&String> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("u_") && !k.starts_with("u_edgecc_"))
        .collect();
    assert!(copied.is_empty(), "staging columns copied: {copied:?}");
    assert_eq!(em.table_rows("u_edgecc_interaction_import").len(), 3);
    assert_eq!(em.table_rows("sn_openframe_phone_log").len(), 1);
    assert_eq!(
        em.order("c-1"),
        vec![
            create.correlation_id,
            log.correlation_id,
            update.correlation_id
        ]
    );
    em.stop().await;
}

/// ServiceNow answers: a 200 FAILURE body (permanent when it names an ACL,
/// retried otherwise), 403, 429 with Retry-After, a poison row.
#[actix_rt::test]
async fn servicenow_answer_classes() {
    let SnRig {
        em,
        adapter,
        dir: _dir,
        ..
    } = plain_rig(ServiceNowMode::ImportSet).await;
    let r = || record(1, "c-1", RecordKind::WorkItemCreate, r#"{"note":"poison"}"#);

    em.set_mode(Mode::Failure {
        message: "Operation Failed: ACL restricts it".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        one(&adapter, r()).await,
        Outcome::Permanent { status: 200, .. }
    ));
    em.set_mode(Mode::Failure {
        message: "Transaction cancelled".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        one(&adapter, r()).await,
        Outcome::Retry {
            crm_down: false,
            ..
        }
    ));
    em.set_mode(Mode::Status {
        status: 403,
        body: "ACL".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        one(&adapter, r()).await,
        Outcome::Permanent { status: 403, .. }
    ));
    em.set_mode(Mode::RetryAfter { secs: 3 }).await.unwrap();
    match one(&adapter, r()).await {
        Outcome::Retry {
            retry_after,
            crm_down: true,
            ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)))
        }
        other => panic!("{other:?}"),
    }
    em.set_mode(Mode::Reject {
        pattern: "poison".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        one(&adapter, r()).await,
        Outcome::Permanent { status: 400, .. }
    ));
    em.stop().await;
}

/// OAuth: a token is fetched once and reused; after the instance forgets
/// it (401) the adapter fetches a new one and the record still lands; a
/// refused client secret is a retry that trips the breaker.
#[actix_rt::test]
async fn servicenow_oauth_refresh_on_401() {
    let oauth = EmulatorConfig {
        basic: Some(("edgecc".into(), "pw".into())),
        oauth_client: Some(("cid".into(), "csecret".into())),
        ..EmulatorConfig::default()
    };
    let rig = sn_rig(oauth, ServiceNowMode::ImportSet, |c, dir| {
        c.auth = ServiceNowAuth::OauthPassword;
        c.oauth_client_id = Some("cid".into());
        c.oauth_client_secret_file = Some(secret_file(dir, "cs", b"csecret"));
    })
    .await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    for seq in 1..=2 {
        let r = record(seq, "c-1", RecordKind::PhoneLogCreate, "{}");
        assert!(matches!(one(adapter, r).await, Outcome::Delivered { .. }));
    }
    assert_eq!(em.stats().tokens_issued, 1);
    assert!(em
        .last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .starts_with("Bearer "));
    em.expire_tokens();
    let r = record(3, "c-1", RecordKind::PhoneLogCreate, "{}");
    assert!(matches!(one(adapter, r).await, Outcome::Delivered { .. }));
    assert_eq!(em.stats().tokens_issued, 2);
    assert_eq!(em.records().len(), 3);

    let (bad, _other) =
        rig.another(|c, dir| c.oauth_client_secret_file = Some(secret_file(dir, "cs2", b"wrong")));
    let out = one(&bad, record(4, "c-1", RecordKind::PhoneLogCreate, "{}")).await;
    assert!(
        matches!(out, Outcome::Retry { crm_down: true, .. }),
        "{out:?}"
    );
    em.stop().await;
}

/// Table mode: a create is looked up before it is posted (so a second
/// adapter without the sys_id map does not create it twice), the sys_id
/// survives closing and reopening storage, and the update is a single
/// PATCH by that sys_id. An update whose interaction never arrived is
/// permanent.
#[actix_rt::test]
async fn servicenow_table_mode_lookup_and_patch() {
    let rig = plain_rig(ServiceNowMode::Table).await;
    let create = record(
        1,
        "c-1",
        RecordKind::InteractionCreate,
        r#"{"short_description":"call"}"#,
    );
    let sys_id = {
        let (em, adapter) = (&rig.em, &rig.adapter);
        assert!(matches!(
            one(adapter, create.clone()).await,
            Outcome::Delivered { .. }
        ));
        assert_eq!(em.last_request().unwrap().method, "POST");
        let rows = em.table_rows("interaction");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0]["u_edgecc_correlation_id"],
            create.correlation_id.as_str()
        );
        assert_eq!(rows[0]["u_edgecc_call_id"], "c-1");
        rows[0]["sys_id"].as_str().unwrap().to_string()
    };

    // Another box (empty map) replays the create: found by lookup, not posted.
    let (adapter, _other) = rig.another(|_, _| {});
    let em = &rig.em;
    match one(&adapter, create.clone()).await {
        Outcome::Delivered { link: Some(link) } => assert!(link.contains(&sys_id)),
        other => panic!("{other:?}"),
    }
    let req = em.last_request().unwrap();
    assert_eq!(req.method, "GET");
    assert!(
        req.path
            .contains("sysparm_query=u_edgecc_correlation_id%3D"),
        "{}",
        req.path
    );
    assert_eq!(em.table_rows("interaction").len(), 1);
    drop(adapter);

    // The first box restarts: the stored sys_id drives a single PATCH.
    let rig = rig.restart();
    let (em, adapter) = (&rig.em, &rig.adapter);
    let before = em.stats().requests;
    let update = record(
        2,
        "c-1",
        RecordKind::InteractionUpdate,
        r#"{"event":"ended","terminal":{"reason":"completed"},"seq":1}"#,
    );
    assert!(matches!(
        one(adapter, update).await,
        Outcome::Delivered { .. }
    ));
    // Before the first delivery: one read per table (three), one
    // dictionary read per lookup field (four); then a single PATCH.
    assert_eq!(em.stats().requests, before + 8);
    let req = em.last_request().unwrap();
    assert_eq!(req.method, "PATCH");
    assert_eq!(req.path, format!("/api/now/table/interaction/{sys_id}"));
    assert_eq!(em.table_rows("interaction")[0]["state"], "closed_complete");

    let orphan = record(3, "c-9", RecordKind::InteractionUpdate, "{}");
    assert!(matches!(
        one(adapter, orphan).await,
        Outcome::Permanent { status: 404, .. }
    ));

    // A maintenance page in front of the write path answers 200 in HTML:
    // neither a create nor an update counts as delivered, and once the
    // page is gone the create lands once.
    em.set_mode(Mode::Writes {
        status: 200,
        body: "<html>Instance under maintenance</html>".into(),
    })
    .await
    .unwrap();
    let create2 = record(4, "c-2", RecordKind::InteractionCreate, "{}");
    for r in [
        create2.clone(),
        record(5, "c-1", RecordKind::InteractionUpdate, "{}"),
    ] {
        let out = one(adapter, r).await;
        assert!(
            matches!(
                out,
                Outcome::Retry {
                    crm_down: false,
                    ..
                }
            ),
            "{out:?}"
        );
    }
    em.set_mode(Mode::Normal).await.unwrap();
    assert!(matches!(
        one(adapter, create2).await,
        Outcome::Delivered { link: Some(_) }
    ));
    let rows = em.table_rows("interaction");
    assert_eq!(
        rows.iter()
            .filter(|r| r["u_edgecc_call_id"] == "c-2")
            .count(),
        1
    );
    em.stop().await;
}

/// Issue 22, point 1: table mode writes phone logs to OpenFrame's
/// `sn_openframe_phone_log`; a table the instance lacks is answered
/// `400 Invalid table …` (as ServiceNow does), and the adapter dead-letters
/// the record with a reason naming the config key instead of retrying.
#[actix_rt::test]
async fn servicenow_phone_log_table_and_invalid_table() {
    let rig = plain_rig(ServiceNowMode::Table).await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let create = record(1, "c-1", RecordKind::InteractionCreate, "{}");
    assert!(matches!(
        one(adapter, create).await,
        Outcome::Delivered { .. }
    ));
    let log = record(2, "c-1", RecordKind::PhoneLogCreate, r#"{"duration":"30"}"#);
    let out = one(adapter, log).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(em.table_rows("sn_openframe_phone_log").len(), 1);

    let (typo, _typo_dir) =
        rig.another(|c, _| c.table_phone_log = "sn_open_frame_phone_log".into());
    match one(&typo, record(2, "c-2", RecordKind::PhoneLogCreate, "{}")).await {
        Outcome::Permanent {
            status: 400,
            reason,
        } => {
            assert!(
                reason.contains("crm.servicenow.table_phone_log"),
                "{reason}"
            );
            assert!(
                reason.contains("Invalid table sn_open_frame_phone_log"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(em.table_rows("sn_open_frame_phone_log").len(), 0);

    let (import, _import_dir) = rig.another(|c, _| {
        c.mode = ServiceNowMode::ImportSet;
        c.import_table_work_item = "u_edgecc_workitem_import".into();
    });
    match one(&import, record(3, "c-3", RecordKind::WorkItemCreate, "{}")).await {
        Outcome::Permanent {
            status: 400,
            reason,
        } => {
            assert!(
                reason.contains("crm.servicenow.import_table_work_item"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    em.stop().await;
}

/// Issue 22, point 6: an import is delivered only when every transform map
/// put the row in its target. One map's `error` among two (only
/// `result[1]`), a `skipped` row (empty coalesce value) and a row staged
/// but never transformed (`result.table` is the staging table) are dead
/// letters with their reason, not "delivered".
#[actix_rt::test]
async fn servicenow_import_every_map_must_transform() {
    let mut tables = default_tables();
    tables.insert(
        "u_call_audit".into(),
        TableDef::target(&["u_correlation_id"]),
    );
    tables.insert(
        "u_edgecc_interaction_import".into(),
        TableDef::staging(&["interaction", "u_call_audit"]),
    );
    tables.insert("u_edgecc_phone_log_import".into(), TableDef::staging(&[]));
    let with_tables = EmulatorConfig {
        sn_tables: tables,
        ..EmulatorConfig::default()
    };
    let SnRig {
        em,
        adapter,
        dir: _dir,
        ..
    } = sn_rig(with_tables, ServiceNowMode::ImportSet, |_, _| {}).await;

    let create = record(1, "c-1", RecordKind::InteractionCreate, "{}");
    let out = one(&adapter, create.clone()).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(em.table_rows("interaction").len(), 1);
    assert_eq!(em.table_rows("u_call_audit").len(), 1);

    em.set_mode(Mode::ImportError {
        target: "u_call_audit".into(),
        message: "Data Policy Exception: Short description is mandatory".into(),
    })
    .await
    .unwrap();
    let update = record(2, "c-1", RecordKind::InteractionUpdate, "{}");
    match one(&adapter, update).await {
        Outcome::Permanent { reason, .. } => assert!(reason.contains("mandatory"), "{reason}"),
        other => panic!("{other:?}"),
    }
    em.set_mode(Mode::Normal).await.unwrap();

    let mut orphan = record(3, "", RecordKind::InteractionCreate, "{}");
    orphan.interaction_key = String::new();
    match one(&adapter, orphan).await {
        Outcome::Permanent { reason, .. } => assert!(reason.contains("skipped"), "{reason}"),
        other => panic!("{other:?}"),
    }

    let log = record(4, "c-1", RecordKind::PhoneLogCreate, "{}");
    match one(&adapter, log).await {
        Outcome::Permanent { reason, .. } => {
            assert!(reason.contains("not transformed"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(em.table_rows("u_edgecc_phone_log_import").len(), 1);
    assert_eq!(em.table_rows("sn_openframe_phone_log").len(), 0);
    em.stop().await;
}

/// Issue 22, point 2: ServiceNow drops a query term on a field the table
/// lacks and answers other rows, so a lookup on such a field would "find"
/// a stranger's interaction and skip the create. Table mode checks its
/// lookup fields in `sys_dictionary` first (here `correlation_id`, which
/// `interaction` does not have: a dead letter naming the key) and, with
/// the default custom fields, creates its own record next to the stranger
/// and finds that one again on a replay.
#[actix_rt::test]
async fn servicenow_table_lookup_cannot_match_a_stranger() {
    let rig = plain_rig(ServiceNowMode::Table).await;
    let em = &rig.em;
    let mut stranger = serde_json::Map::new();
    stranger.insert("short_description".into(), "someone else's call".into());
    stranger.insert("u_edgecc_call_id".into(), "c-77".into());
    let stranger_id = em.seed_row("interaction", stranger);
    let (old, _old_dir) = rig.another(|c, _| {
        c.table_correlation_field = "correlation_id".into();
        c.table_interaction_key_field = "correlation_display".into();
    });
    let create = record(1, "c-1", RecordKind::InteractionCreate, "{}");
    match one(&old, create.clone()).await {
        Outcome::Permanent { reason, .. } => {
            assert!(
                reason.contains("crm.servicenow.table_correlation_field"),
                "{reason}"
            );
            assert!(reason.contains("`interaction`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(em.table_rows("interaction").len(), 1);

    let link = match one(&rig.adapter, create.clone()).await {
        Outcome::Delivered { link: Some(link) } => link,
        other => panic!("{other:?}"),
    };
    assert!(!link.contains(&stranger_id), "{link}");
    let rows = em.table_rows("interaction");
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1]["u_edgecc_correlation_id"],
        create.correlation_id.as_str()
    );
    assert_eq!(rows[1]["u_edgecc_call_id"], "c-1");

    let (replay, _other) = rig.another(|_, _| {});
    match one(&replay, create).await {
        Outcome::Delivered { link: Some(again) } => assert_eq!(again, link),
        other => panic!("{other:?}"),
    }
    assert_eq!(em.table_rows("interaction").len(), 2);
    em.stop().await;
}

/// Issue 22, point 8: `auth = "api_key"` sends the key as `x-sn-apikey`
/// (no `Authorization` header); a refused key gets ServiceNow's 401 body
/// and is retried with the breaker counting, like a refused password.
#[actix_rt::test]
async fn servicenow_api_key_auth() {
    let with_key = EmulatorConfig {
        api_key: Some("now_k3y".into()),
        ..EmulatorConfig::default()
    };
    let rig = sn_rig(with_key, ServiceNowMode::ImportSet, |c, dir| {
        c.auth = ServiceNowAuth::ApiKey;
        c.user = None;
        c.password_file = None;
        c.api_key_file = Some(secret_file(dir, "key", b"now_k3y\n"));
    })
    .await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let out = one(
        adapter,
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
    )
    .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let req = em.last_request().unwrap();
    assert_eq!(req.header("x-sn-apikey"), Some("now_k3y"));
    assert_eq!(req.header("authorization"), None);

    let (refused, _other) =
        rig.another(|c, dir| c.api_key_file = Some(secret_file(dir, "key2", b"stale")));
    match one(
        &refused,
        record(2, "c-1", RecordKind::InteractionUpdate, "{}"),
    )
    .await
    {
        Outcome::Retry {
            crm_down: true,
            reason,
            ..
        } => assert!(reason.contains("User Not Authenticated"), "{reason}"),
        other => panic!("{other:?}"),
    }
    em.stop().await;
}

/// Issue 22, points 3 and 4: table mode links records as ServiceNow does.
/// The phone log becomes its interaction's `channel_metadata_table` /
/// `channel_metadata_document`; the work item is an `awa_work_item` whose
/// `document_table` / `document_id` name the interaction.
#[actix_rt::test]
async fn servicenow_table_mode_links_records() {
    let SnRig {
        em,
        adapter,
        dir: _dir,
        ..
    } = plain_rig(ServiceNowMode::Table).await;
    for r in [
        record(1, "c-1", RecordKind::InteractionCreate, "{}"),
        record(2, "c-1", RecordKind::PhoneLogCreate, "{}"),
        record(3, "c-1", RecordKind::WorkItemCreate, "{}"),
    ] {
        let out = one(&adapter, r).await;
        assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    }
    let interaction = &em.table_rows("interaction")[0];
    let phone_log = &em.table_rows("sn_openframe_phone_log")[0];
    let work_item = &em.table_rows("awa_work_item")[0];
    assert_eq!(
        interaction["channel_metadata_table"],
        "sn_openframe_phone_log"
    );
    assert_eq!(
        interaction["channel_metadata_document"],
        phone_log["sys_id"]
    );
    assert_eq!(work_item["document_table"], "interaction");
    assert_eq!(work_item["document_id"], interaction["sys_id"]);
    assert!(em.table_rows("task").is_empty());
    em.stop().await;
}

/// Issue 22, point 7: `openframe` mode uses ServiceNow's voice-interaction
/// API. The create is a POST with `clientSessionId` = the call's id and
/// makes a phone interaction; the phone log and each update PATCH it by
/// the sys_id kept in edgecc's state (ServiceNow creates and links the
/// phone log); `ended` closes it. After a restart the stored sys_id is
/// used; another box replaying the create finds the interaction instead
/// of creating a second; `{"result":{"status":"FAILURE"}}` is not delivered.
#[actix_rt::test]
async fn servicenow_openframe_voice_interaction() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let create = record(
        1,
        "c-1",
        RecordKind::InteractionCreate,
        r#"{"ani":"+15550100","direction":"inbound","reason":"accepted","attached":{"lang":"en"}}"#,
    );
    let sys_id = {
        let (em, adapter) = (&rig.em, &rig.adapter);
        assert!(matches!(
            one(adapter, create.clone()).await,
            Outcome::Delivered { link: Some(_) }
        ));
        let req = em.last_request().unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/api/now/openframe/voice-interaction")
        );
        let sent: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(sent["interaction"]["clientSessionId"], "c-1");
        let rows = em.table_rows("interaction");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["type"], "phone");
        assert_eq!(rows[0]["state"], "work_in_progress");
        assert_eq!(rows[0]["caller_phone_number"], "+15550100");
        let sys_id = rows[0]["sys_id"].as_str().unwrap().to_string();

        let log = record(
            2,
            "c-1",
            RecordKind::PhoneLogCreate,
            r#"{"direction":"inbound","answered_ms":1795278919394}"#,
        );
        assert!(matches!(one(adapter, log).await, Outcome::Delivered { .. }));
        let req = em.last_request().unwrap();
        assert_eq!(req.method, "PATCH");
        assert_eq!(
            req.path,
            format!("/api/now/openframe/voice-interaction/{sys_id}")
        );
        let logs = em.table_rows("sn_openframe_phone_log");
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0]["call_id"], "c-1");
        assert_eq!(logs[0]["start_time"], "2026-11-21 16:35:19");
        assert_eq!(
            em.table_rows("interaction")[0]["channel_metadata_document"],
            logs[0]["sys_id"]
        );
        sys_id
    };

    // After a restart, the stored sys_id drives the PATCH that closes it.
    let rig = rig.restart();
    let (em, adapter) = (&rig.em, &rig.adapter);
    let ended = record(
        3,
        "c-1",
        RecordKind::InteractionUpdate,
        r#"{"event":"ended","terminal":"hangup","duration_ms":1000,"talk_ms":500,"seq":1}"#,
    );
    assert!(matches!(
        one(adapter, ended).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(
        em.last_request().unwrap().path,
        format!("/api/now/openframe/voice-interaction/{sys_id}")
    );
    assert_eq!(em.table_rows("interaction")[0]["state"], "closed_complete");

    // Another box replays the create: found by the call id, not posted.
    let (replay, _other) = rig.another(|_, _| {});
    match one(&replay, create).await {
        Outcome::Delivered { link: Some(link) } => assert!(link.contains(&sys_id), "{link}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(em.table_rows("interaction").len(), 1);

    em.set_mode(Mode::Failure {
        message: "Interaction could not be updated".into(),
    })
    .await
    .unwrap();
    let update = record(
        4,
        "c-1",
        RecordKind::InteractionUpdate,
        r#"{"event":"hold"}"#,
    );
    match one(adapter, update).await {
        Outcome::Retry {
            crm_down: false,
            reason,
            ..
        } => assert!(reason.contains("FAILURE"), "{reason}"),
        other => panic!("{other:?}"),
    }
    em.stop().await;
}

/// OpenFrame mode: a 2xx without ServiceNow's `result` (a maintenance page
/// in front of the write path) is retried, for the create and for an
/// update, never counted as delivered; once the page is gone the create
/// lands once and the update closes the interaction.
#[actix_rt::test]
async fn servicenow_openframe_page_without_result_is_retried() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let page = || Mode::Writes {
        status: 200,
        body: "<html>Instance under maintenance</html>".into(),
    };
    let create = record(
        1,
        "c-1",
        RecordKind::InteractionCreate,
        r#"{"ani":"+15550100","direction":"inbound","reason":"accepted"}"#,
    );
    let update = record(
        2,
        "c-1",
        RecordKind::InteractionUpdate,
        r#"{"event":"ended","terminal":{"reason":"completed"}}"#,
    );
    for r in [create, update] {
        em.set_mode(page()).await.unwrap();
        let out = one(adapter, r.clone()).await;
        assert!(
            matches!(
                out,
                Outcome::Retry {
                    crm_down: false,
                    ..
                }
            ),
            "{out:?}"
        );
        em.set_mode(Mode::Normal).await.unwrap();
        let out = one(adapter, r).await;
        assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    }
    let rows = em.table_rows("interaction");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "closed_complete");
    em.stop().await;
}

/// Posts one staging row to the emulator's Import Set API (no auth) and
/// answers the status and the first `result` entry.
async fn post_import(
    em: &EmulatorHandle,
    staging: &str,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let row: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let mut resp = awc::Client::default()
        .post(format!("{}/api/now/import/{staging}", em.url()))
        .send_json(&row)
        .await
        .expect("import request");
    let body: serde_json::Value = resp.json().await.expect("import answer");
    (resp.status().as_u16(), body["result"][0].clone())
}

/// The columns every contract row carries (contract of issue 22).
fn common<'a>(kind: &'a str, call: &'a str, seq: &'a str, id: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("u_correlation_id", id),
        ("u_kind", kind),
        ("u_interaction", call),
        ("u_sequence", seq),
        ("u_created_at", "2026-11-21 16:35:19"),
        ("u_data", r#"{"ani":"+15550100","agent":"a1"}"#),
    ]
}

/// Issue 22: the emulator's transform is the shipped update set's. Rows in
/// the adapter's contract columns, posted over HTTP: only mapped fields
/// reach the interaction (no staging column, no `u_data`); an empty value
/// leaves the field as it is ("Copy empty fields" off); a state not in the
/// choice list is ignored (choice action `ignore`); an older update is
/// `ignored` by the sequence script; `opened_at` comes from the create
/// only; the phone log's script points the interaction at it, the work
/// item's names the interaction as its document and puts its note on the
/// interaction; an unchanged replay is `ignored`; a staging value longer
/// than its column is cut to the column.
#[actix_rt::test]
async fn servicenow_import_transform_is_the_update_sets() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let agent = "0123456789abcdef0123456789abcdef";
    let queue = "fedcba9876543210fedcba9876543210";
    let ix_staging = "u_edgecc_interaction_import";
    let mut create = common("interaction.create", "c-1", "1", "e:c-1:create:1");
    create.extend([
        ("u_type", "phone"),
        ("u_state", "work_in_progress"),
        ("u_direction", "inbound"),
        ("u_caller_phone_number", "+15550100"),
        ("u_short_description", "Inbound call from +15550100"),
        ("u_opened_for", ""),
        ("u_assigned_to", agent),
        ("u_channel", ""),
        ("u_queue", ""),
        ("u_opened_at", "2026-11-21 16:35:00"),
        // A key the old adapter flattened: not mapped, never copied.
        ("u_ani", "+15550100"),
    ]);
    let (status, result) = post_import(&em, ix_staging, &create).await;
    assert_eq!(status, 201);
    assert_eq!(result["status"], "inserted", "{result}");
    assert_eq!(result["table"], "interaction");
    let ix = &em.table_rows("interaction")[0];
    for (field, value) in [
        ("type", "phone"),
        ("state", "work_in_progress"),
        ("direction", "inbound"),
        ("caller_phone_number", "+15550100"),
        ("short_description", "Inbound call from +15550100"),
        ("assigned_to", agent),
        ("opened_at", "2026-11-21 16:35:00"),
        ("u_edgecc_call_id", "c-1"),
        ("u_edgecc_sequence", "1"),
    ] {
        assert_eq!(ix[field], value, "{field}: {ix}");
    }
    for absent in [
        "u_ani",
        "u_data",
        "u_state",
        "opened_for",
        "channel",
        "queue",
    ] {
        assert!(ix.get(absent).is_none(), "{absent}: {ix}");
    }
    let ix_id = ix["sys_id"].as_str().unwrap().to_string();

    let mut log = common("phone_log.create", "c-1", "2", "e:c-1:log:2");
    log.extend([
        ("u_call_id", "c-1"),
        ("u_direction", "inbound"),
        ("u_phone_number", "+15550100"),
        ("u_start_time", "2026-11-21 16:35:05"),
        ("u_contact", ""),
        ("u_agent", agent),
    ]);
    let (_, result) = post_import(&em, "u_edgecc_phone_log_import", &log).await;
    assert_eq!(result["status"], "inserted", "{result}");
    let log_id = result["sys_id"].as_str().unwrap().to_string();
    let pl = &em.table_rows("sn_openframe_phone_log")[0];
    assert_eq!(pl["call_id"], "c-1");
    assert_eq!(pl["phone_number"], "+15550100");
    assert_eq!(pl["start_time"], "2026-11-21 16:35:05");
    assert!(pl.get("u_data").is_none(), "{pl}");
    let ix = &em.table_rows("interaction")[0];
    assert_eq!(ix["channel_metadata_table"], "sn_openframe_phone_log");
    assert_eq!(ix["channel_metadata_document"], log_id.as_str());
    let (_, replay) = post_import(&em, "u_edgecc_phone_log_import", &log).await;
    assert_eq!(replay["status"], "ignored", "{replay}");
    assert_eq!(em.table_rows("sn_openframe_phone_log").len(), 1);

    let update =
        |seq: &'static str, state: &'static str, note: &'static str, closed: &'static str| {
            let mut row = common("interaction.update", "c-1", seq, "e:c-1:update");
            row.extend([
                ("u_state", state),
                ("u_assigned_to", ""),
                ("u_queue", ""),
                ("u_work_notes", note),
                ("u_closed_at", closed),
            ]);
            row
        };
    let (_, result) = post_import(&em, ix_staging, &update("4", "on_hold", "Held", "")).await;
    assert_eq!(result["status"], "updated", "{result}");
    let ix = &em.table_rows("interaction")[0];
    assert_eq!(ix["state"], "on_hold");
    assert!(
        ix["work_notes"].as_str().unwrap().starts_with("Held"),
        "{ix}"
    );
    assert_eq!(ix["assigned_to"], agent, "an empty value is not copied");
    assert_eq!(ix["opened_at"], "2026-11-21 16:35:00");
    let (_, result) =
        post_import(&em, ix_staging, &update("3", "closed_complete", "Late", "")).await;
    assert_eq!(result["status"], "ignored", "{result}");
    assert_eq!(em.table_rows("interaction")[0]["state"], "on_hold");
    let (_, result) = post_import(&em, ix_staging, &update("5", "on_the_moon", "Odd", "")).await;
    assert_eq!(result["status"], "updated", "{result}");
    let ix = &em.table_rows("interaction")[0];
    assert_eq!(
        ix["state"], "on_hold",
        "a value not in the choices is ignored"
    );
    assert!(
        ix["work_notes"].as_str().unwrap().starts_with("Odd"),
        "{ix}"
    );
    // `work_notes` is a journal: the transform adds an entry, the earlier
    // one stays.
    assert!(ix["work_notes"].as_str().unwrap().contains("Held"), "{ix}");

    let mut item = common("work_item.create", "c-1", "6", "e:c-1:item:6");
    item.extend([
        ("u_queue", queue),
        ("u_work_notes", "Callback to +15550100"),
    ]);
    let (_, result) = post_import(&em, "u_edgecc_work_item_import", &item).await;
    assert_eq!(result["status"], "inserted", "{result}");
    let wi = &em.table_rows("awa_work_item")[0];
    assert_eq!(wi["document_table"], "interaction");
    assert_eq!(wi["document_id"], ix_id.as_str());
    assert_eq!(wi["queue"], queue);
    let notes = em.table_rows("interaction")[0]["work_notes"].clone();
    assert!(
        notes.as_str().unwrap().starts_with("Callback to +15550100"),
        "{notes}"
    );

    let (_, result) = post_import(
        &em,
        ix_staging,
        &update("7", "closed_complete", "Ended", "2026-11-21 16:40:00"),
    )
    .await;
    assert_eq!(result["status"], "updated", "{result}");
    let ix = &em.table_rows("interaction")[0];
    assert_eq!(ix["state"], "closed_complete");
    assert_eq!(ix["closed_at"], "2026-11-21 16:40:00");
    assert_eq!(ix["u_edgecc_sequence"], "7");
    assert_eq!(em.table_rows("interaction").len(), 1);
    assert_eq!(em.stats().invalid_references, 0);

    let long = "x".repeat(9_000);
    let mut big = common("interaction.update", "c-1", "8", "e:c-1:update:8");
    big[5] = ("u_data", long.as_str());
    post_import(&em, ix_staging, &big).await;
    let staged = em.table_rows(ix_staging);
    let last = staged.last().unwrap();
    assert_eq!(last["u_data"].as_str().unwrap().len(), 8_000);
    em.stop().await;
}

/// The emulator's 429 is ServiceNow's (ServiceNowDocs, inbound REST API
/// rate limiting): `X-RateLimit-Limit`, `X-RateLimit-Reset` as a UNIX
/// timestamp, `X-RateLimit-Rule` (a sys_id), `Retry-After`, and the
/// documented error body.
#[actix_rt::test]
async fn servicenow_rate_limit_answer() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    em.set_mode(Mode::RetryAfter { secs: 7 }).await.unwrap();
    let before = edgecc::clock::now_ms() / 1_000;
    let mut resp = awc::Client::default()
        .post(format!("{}/api/now/table/interaction", em.url()))
        .send_body("{}")
        .await
        .unwrap();
    let after = edgecc::clock::now_ms() / 1_000;
    assert_eq!(resp.status().as_u16(), 429);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("retry-after").as_deref(), Some("7"));
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("100"));
    let reset: u64 = header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(
        (before + 7..=after + 7).contains(&reset),
        "{reset} not a UNIX time 7 s ahead"
    );
    let rule = header("x-ratelimit-rule").unwrap();
    assert!(edgecc::crm::servicenow::is_sys_id(&rule), "{rule}");
    assert!(header("x-ratelimit-remaining").is_none());
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "error": {
                "message": "Rate limit exceeded",
                "detail": "Rate limit of 100 requests per hour for Table API exceeded"
            },
            "status": "failure"
        })
    );
    em.stop().await;
}

/// Issue 22, end to end in Import Set mode, against the adapter/update-set
/// contract: an accepted call (create, phone log, hold, ended) leaves one
/// interaction of type phone, closed, with the caller's number, the agent
/// as `assigned_to`, `opened_at` from the create (not moved by updates),
/// `closed_at`, and pointing at its phone log; a call nobody took (create,
/// callback work item) leaves a work item whose document is its
/// interaction. No edgecc key becomes a column of its own (they travel in
/// `u_data`), and nothing but `u_edgecc_*` reaches a target as `u_*`.
///
/// It fails against an adapter that flattens the record's keys into
/// `u_<key>` columns, as the adapter before issue 22's fields did.
#[actix_rt::test]
async fn servicenow_import_call_closes_the_interaction() {
    let rig = plain_rig(ServiceNowMode::ImportSet).await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let mut user = serde_json::Map::new();
    user.insert("user_name".into(), "a1".into());
    user.insert("name".into(), "Agent One".into());
    let a1 = em.seed_row("sys_user", user);
    let body = |kind: RecordKind, seq: u64, call: &str, v: serde_json::Value| {
        let mut r = record(seq, call, kind, &v.to_string());
        r.created_at_ms += seq * 60_000;
        r
    };
    let records = [
        body(
            RecordKind::InteractionCreate,
            1,
            "c-1",
            serde_json::json!({"call_id": "c-1", "direction": "inbound", "channel": "phone",
                "ani": "+15550100", "dnis": "100", "attached": {"account": "42"},
                "queue": "sales", "agent": "a1", "reason": "accepted",
                "arrived_ms": 1_795_278_900_000u64}),
        ),
        body(
            RecordKind::PhoneLogCreate,
            2,
            "c-1",
            serde_json::json!({"call_id": "c-1", "direction": "inbound", "ani": "+15550100",
                "dnis": "100", "agent": "a1", "queue": "sales", "attached": {},
                "arrived_ms": 1_795_278_900_000u64, "answered_ms": 1_795_278_910_000u64}),
        ),
        body(
            RecordKind::InteractionUpdate,
            3,
            "c-1",
            serde_json::json!({"event": "hold", "seq": 1}),
        ),
        body(
            RecordKind::InteractionUpdate,
            4,
            "c-1",
            serde_json::json!({"event": "ended", "seq": 2, "terminal": {"reason": "completed"},
                "duration_ms": 90_000, "talk_ms": 80_000}),
        ),
        body(
            RecordKind::InteractionCreate,
            5,
            "c-2",
            serde_json::json!({"call_id": "c-2", "direction": "inbound", "channel": "phone",
                "ani": "+15550111", "dnis": "100", "attached": {}, "queue": "sales",
                "agent": null, "reason": "queue_timeout", "arrived_ms": 1_795_278_900_000u64}),
        ),
        body(
            RecordKind::WorkItemCreate,
            6,
            "c-2",
            serde_json::json!({"call_id": "c-2", "type": "callback", "reason": "queue_timeout",
                "callback_number": "+15550111", "dnis": "100", "attached": {},
                "queue": "sales", "waited_ms": 60_000}),
        ),
    ];
    for r in records {
        let out = one(adapter, r.clone()).await;
        assert!(
            matches!(out, Outcome::Delivered { .. }),
            "{}: {out:?}",
            r.kind.as_str()
        );
    }
    let staged = em.table_rows("u_edgecc_interaction_import");
    assert!(staged[0]["u_data"].as_str().unwrap().contains("+15550100"));
    assert!(staged[0].get("u_ani").is_none(), "{}", staged[0]);

    let interactions = em.table_rows("interaction");
    assert_eq!(interactions.len(), 2);
    let ix = &interactions[0];
    let logs = em.table_rows("sn_openframe_phone_log");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["call_id"], "c-1");
    assert_eq!(logs[0]["phone_number"], "+15550100");
    for (field, value) in [
        ("u_edgecc_call_id", "c-1"),
        ("type", "phone"),
        ("state", "closed_complete"),
        ("direction", "inbound"),
        ("caller_phone_number", "+15550100"),
        ("assigned_to", a1.as_str()),
        ("channel_metadata_table", "sn_openframe_phone_log"),
        (
            "channel_metadata_document",
            logs[0]["sys_id"].as_str().unwrap(),
        ),
    ] {
        assert_eq!(ix[field], value, "{field}: {ix}");
    }
    // opened_at is the create's u_opened_at; the ended update (staged
    // third, a few minutes later) did not move it.
    let opened = ix["opened_at"].as_str().unwrap_or("");
    assert_eq!(opened.len(), "yyyy-MM-dd HH:mm:ss".len(), "{ix}");
    assert_eq!(staged[0]["u_opened_at"], opened);
    assert_ne!(staged[2]["u_created_at"], opened);
    assert!(!ix["closed_at"].as_str().unwrap_or("").is_empty(), "{ix}");
    for row in &interactions {
        let copied: Vec<&String> = row
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("u_") && !k.starts_with("u_edgecc_"))
            .collect();
        assert!(copied.is_empty(), "{copied:?}");
    }
    let items = em.table_rows("awa_work_item");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["document_table"], "interaction");
    assert_eq!(items[0]["document_id"], interactions[1]["sys_id"]);
    assert_eq!(interactions[1]["state"], "new");
    rig.em.stop().await;
}

/// The client-credentials grant: the token is fetched with the client id
/// and secret only (no user, no password), reused while it is fresh, and
/// replaced shortly before `expires_in` runs out, without a 401 first
/// (README, "Roles and authentication").
#[actix_rt::test]
async fn servicenow_client_credentials_token_cached_until_shortly_before_expiry() {
    let oauth = EmulatorConfig {
        oauth_client: Some(("cid".into(), "csecret".into())),
        token_lifetime_secs: 2,
        ..EmulatorConfig::default()
    };
    let rig = sn_rig(oauth, ServiceNowMode::ImportSet, |c, dir| {
        c.auth = ServiceNowAuth::OauthClientCredentials;
        c.user = None;
        c.password_file = None;
        c.oauth_client_id = Some("cid".into());
        c.oauth_client_secret_file = Some(secret_file(dir, "cs", b"csecret"));
    })
    .await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let log = |seq| record(seq, "c-1", RecordKind::PhoneLogCreate, "{}");
    for seq in 1..=2 {
        assert!(matches!(
            one(adapter, log(seq)).await,
            Outcome::Delivered { .. }
        ));
    }
    assert_eq!(em.stats().tokens_issued, 1, "reused while fresh");
    // Lifetime 2 s: refreshed ahead of expiry (the margin, at most half the
    // lifetime), so at 1.2 s the adapter already asks for a new one.
    actix_rt::time::sleep(Duration::from_millis(1_200)).await;
    assert!(matches!(
        one(adapter, log(3)).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(em.stats().tokens_issued, 2);
    assert_eq!(
        em.stats().rejected,
        0,
        "no request went out with a stale token"
    );
    em.stop().await;
}

/// The JWT bearer grant signs a new assertion for every token: after the
/// instance forgets the token, the next token request carries a fresh
/// assertion (the emulator refuses a replayed `jti`, as ServiceNow's JTI
/// verification does) and the record lands.
#[actix_rt::test]
async fn servicenow_jwt_new_assertion_for_every_token() {
    let fixture = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/servicenow_jwt")
            .join(name)
    };
    let jwt = EmulatorConfig {
        oauth_client: Some(("cid".into(), "csecret".into())),
        jwt: Some(edgecc::crm::emulator::JwtVerifier {
            public_key_pem: std::fs::read(fixture("public.pem")).unwrap(),
            kid: Some("edgecc-1".into()),
            ..edgecc::crm::emulator::JwtVerifier::default()
        }),
        ..EmulatorConfig::default()
    };
    let rig = sn_rig(jwt, ServiceNowMode::ImportSet, |c, dir| {
        c.auth = ServiceNowAuth::OauthJwtBearer;
        c.user = Some("edgecc.integration".into());
        c.password_file = None;
        c.oauth_client_id = Some("cid".into());
        c.oauth_client_secret_file = Some(secret_file(dir, "cs", b"csecret"));
        c.jwt_key_file = Some(fixture("key.pem"));
        c.jwt_kid = Some("edgecc-1".into());
    })
    .await;
    let (em, adapter) = (&rig.em, &rig.adapter);
    let mut user = serde_json::Map::new();
    user.insert("user_name".into(), "edgecc.integration".into());
    em.seed_row("sys_user", user);
    let log = |seq| record(seq, "c-1", RecordKind::PhoneLogCreate, "{}");
    assert!(matches!(
        one(adapter, log(1)).await,
        Outcome::Delivered { .. }
    ));
    em.expire_tokens();
    let out = one(adapter, log(2)).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    assert_eq!(em.stats().tokens_issued, 2);
    em.stop().await;
}

/// Through the ServiceNow adapter (Import Set mode): 409 and a 4xx saying
/// "already exists" deliver a create (a 409 on an update does not); 404
/// and 405 (a wrong instance URL) are retried with the breaker counting;
/// a 2xx without ServiceNow's `result` (a maintenance page) is retried;
/// an import row `error` with a transient message is retried, then lands.
#[actix_rt::test]
async fn servicenow_import_answer_classes_through_the_adapter() {
    let SnRig {
        em,
        adapter,
        dir: _dir,
        ..
    } = plain_rig(ServiceNowMode::ImportSet).await;
    let create = || record(1, "c-1", RecordKind::InteractionCreate, "{}");
    let update = || record(2, "c-1", RecordKind::InteractionUpdate, "{}");
    let status = |status: u16, body: &str| Mode::Status {
        status,
        body: body.into(),
    };
    em.set_mode(status(409, "")).await.unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Delivered { .. }
    ));
    let out = one(&adapter, update()).await;
    assert!(matches!(out, Outcome::Retry { .. }), "{out:?}");
    em.set_mode(status(
        400,
        r#"{"error":{"message":"Operation Failed","detail":"Record already exists"},"status":"failure"}"#,
    ))
    .await
    .unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Delivered { .. }
    ));
    for code in [404, 405] {
        em.set_mode(status(code, "Not Found")).await.unwrap();
        let out = one(&adapter, create()).await;
        assert!(
            matches!(out, Outcome::Retry { crm_down: true, .. }),
            "{code}: {out:?}"
        );
    }
    em.set_mode(status(200, "<html>Instance under maintenance</html>"))
        .await
        .unwrap();
    let out = one(&adapter, create()).await;
    assert!(
        matches!(
            out,
            Outcome::Retry {
                crm_down: false,
                ..
            }
        ),
        "{out:?}"
    );
    em.set_mode(Mode::ImportError {
        target: String::new(),
        message: "Transaction cancelled: maximum execution time exceeded".into(),
    })
    .await
    .unwrap();
    match one(&adapter, create()).await {
        Outcome::Retry {
            reason,
            crm_down: false,
            ..
        } => assert!(reason.contains("transient"), "{reason}"),
        other => panic!("{other:?}"),
    }
    em.set_mode(Mode::Normal).await.unwrap();
    assert!(matches!(
        one(&adapter, create()).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(em.table_rows("interaction").len(), 1);
    em.stop().await;
}
