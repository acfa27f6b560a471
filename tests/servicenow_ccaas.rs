//! The ServiceNow adapter against the CRM emulator over 127.0.0.1, for
//! what a CCaaS integration needs beyond creating records (issue 22): the
//! agent resolved to a `sys_user` for `assigned_to`, a callback work item
//! routed through the AWA Routing API, and the OAuth JWT bearer grant.

use std::path::{Path, PathBuf};

use edgecc::crm::emulator::{EmulatorConfig, EmulatorHandle, JwtVerifier};
use edgecc::crm::servicenow::{ServiceNowAuth, ServiceNowConfig, ServiceNowMode, JWT_BEARER_GRANT};
use edgecc::crm::{CrmAdapter, Outcome};
use edgecc_storage::{Record, RecordKind};
use serde_json::{json, Map, Value};

use super::sn_rig::{plain_rig, secret_file, sn_rig};
use edgecc::crm::servicenow::ANONYMOUS_CALLER;
use edgecc_actors::call::{Direction, TerminalReason};
use edgecc_actors::crm::{
    CreateReason, CrmBody, CrmRecord, InboundPhoneLog, InteractionCreate, InteractionUpdate,
    PhoneLogCreate, TransferTarget, UpdateEvent,
};
use edgecc_actors::{AgentId, CallId, QueueId};

/// A record of `interaction` with a JSON body.
fn record(seq: u64, interaction: &str, kind: RecordKind, body: Value) -> Record {
    Record {
        seq,
        correlation_id: format!("edge-01:{interaction}:{}:{seq}", kind.as_str()),
        interaction_key: interaction.into(),
        kind,
        body: body.to_string().into_bytes(),
        created_at_ms: 1_795_278_919_394,
        attempts: 0,
        next_attempt_at_ms: 0,
        last_error: None,
    }
}

/// An accepted call's create, taken by `agent`.
fn accepted(seq: u64, call: &str, agent: &str) -> Record {
    record(
        seq,
        call,
        RecordKind::InteractionCreate,
        json!({"ani": "+15550100", "direction": "inbound", "reason": "accepted",
               "agent": agent, "queue": "sales", "attached": {}}),
    )
}

/// A fixture of tests/fixtures/servicenow_jwt.
fn jwt_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/servicenow_jwt")
        .join(name)
}

/// Delivers one record.
async fn one(adapter: &dyn CrmAdapter, r: Record) -> Outcome {
    let mut out = adapter.deliver(vec![r]).await;
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// A row of fields.
fn row(fields: &[(&str, &str)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

/// The interaction row whose call-id column is `call`.
fn interaction(em: &EmulatorHandle, call: &str) -> Value {
    em.table_rows("interaction")
        .into_iter()
        .find(|r| r["u_edgecc_call_id"] == call)
        .unwrap_or_else(|| panic!("no interaction for {call}"))
}

/// `assigned_to` is the agent's `sys_user` sys_id (found by `user_name`,
/// then cached); an agent ServiceNow does not know leaves it empty and the
/// record is delivered all the same; a stranger found by a dropped query
/// term is never taken. Openframe and table modes alike; a transfer
/// re-assigns.
#[actix_rt::test]
async fn assigned_to_is_the_agents_sys_user() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let (em, sn) = (&rig.em, &rig.adapter);
    let alice = em.seed_row(
        "sys_user",
        row(&[("user_name", "alice"), ("name", "Alice")]),
    );
    let bob = em.seed_row("sys_user", row(&[("user_name", "bob")]));

    assert!(matches!(
        one(sn, accepted(1, "c-1", "alice")).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(interaction(&em, "c-1")["assigned_to"], alice.as_str());
    // Cached: the second call of alice asks sys_user nothing (one lookup
    // of the interaction by call id, one create).
    let before = em.stats().requests;
    assert!(matches!(
        one(sn, accepted(2, "c-2", "alice")).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(em.stats().requests - before, 2);
    assert_eq!(interaction(&em, "c-2")["assigned_to"], alice.as_str());

    // Unknown agent: delivered, assigned_to not set.
    assert!(matches!(
        one(sn, accepted(3, "c-3", "mallory")).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(interaction(&em, "c-3").get("assigned_to"), None);

    // A transfer to bob re-assigns the interaction.
    let transfer = record(
        4,
        "c-1",
        RecordKind::InteractionUpdate,
        json!({"event": "transfer", "from": "alice", "to_agent": "bob", "seq": 1}),
    );
    assert!(matches!(one(sn, transfer).await, Outcome::Delivered { .. }));
    assert_eq!(interaction(&em, "c-1")["assigned_to"], bob.as_str());

    // Table mode, matching on a field sys_user lacks: the emulator drops
    // the term and answers some user, who is not taken.
    let (sn_table, _other) = rig.another(|c, _| {
        c.mode = ServiceNowMode::Table;
        c.agent_user_field = "u_agent_id".into();
    });
    assert!(matches!(
        one(&sn_table, accepted(5, "c-5", "alice")).await,
        Outcome::Delivered { .. }
    ));
    let created = interaction(&em, "c-5");
    assert_eq!(created.get("assigned_to"), None);
    assert_eq!(created["state"], "work_in_progress");
    assert_eq!(created["type"], "phone");

    // Table mode by user_name: assigned.
    let (sn_table, _third) = rig.another(|c, _| c.mode = ServiceNowMode::Table);
    assert!(matches!(
        one(&sn_table, accepted(6, "c-6", "bob")).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(interaction(&em, "c-6")["assigned_to"], bob.as_str());
    em.stop().await;
}

/// Issue 22, point 5: interactions close. In both modes an `ended` update
/// moves the interaction to ServiceNow's closed state: `closed_complete`
/// for a completed call, `closed_abandoned` when the caller hung up first;
/// a `hold` leaves the state alone (ServiceNow's On Hold means "waiting
/// for assignment") and adds a work note.
#[actix_rt::test]
async fn an_ended_call_closes_its_interaction_in_both_modes() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let em = &rig.em;
    for mode in [ServiceNowMode::Openframe, ServiceNowMode::Table] {
        let (sn, _dir) = rig.another(|c, _| c.mode = mode);
        for (call, reason, closed) in [
            ("completed", "completed", "closed_complete"),
            ("abandoned", "abandoned", "closed_abandoned"),
        ] {
            let call = format!("{mode:?}-{call}");
            let out = one(&sn, accepted(1, &call, "alice")).await;
            assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
            let hold = record(
                2,
                &call,
                RecordKind::InteractionUpdate,
                json!({"event": "hold", "agent": "alice", "seq": 1}),
            );
            assert!(matches!(one(&sn, hold).await, Outcome::Delivered { .. }));
            let held = interaction(em, &call);
            assert_eq!(held["state"], "work_in_progress", "{call}");
            assert_eq!(
                held["work_notes"], "edgecc hold: caller put on hold by agent alice",
                "{call}"
            );
            let ended = record(
                3,
                &call,
                RecordKind::InteractionUpdate,
                json!({"event": "ended", "terminal": {"reason": reason}, "seq": 2}),
            );
            assert!(matches!(one(&sn, ended).await, Outcome::Delivered { .. }));
            assert_eq!(interaction(em, &call)["state"], closed, "{call}");
        }
    }
    rig.em.stop().await;
}

/// A whole answered call's records, built from the actors' typed bodies as
/// `actors/src/call/crm.rs` builds them and stored as the outbox stores
/// them: the create (alice accepts), the phone log, hold, a transfer to
/// queue `support`, bob answering there, bob's wrap-up code, the end.
fn whole_call(call: &str, ani: &str) -> Vec<Record> {
    let id = CallId::new(call);
    let (alice, bob) = (AgentId::new("alice"), AgentId::new("bob"));
    let arrived = 1_795_278_900_000;
    let create = CrmBody::InteractionCreate(InteractionCreate {
        call_id: id.clone(),
        direction: Direction::Inbound,
        channel: edgecc_actors::crm::Channel::Phone,
        ani: ani.into(),
        dnis: "100".into(),
        attached: [("lang".to_string(), "en".to_string())].into(),
        queue: Some(QueueId::new("sales")),
        agent: Some(alice.clone()),
        reason: CreateReason::Accepted,
        arrived_ms: arrived,
    });
    let log = CrmBody::PhoneLogCreate(PhoneLogCreate::Inbound(InboundPhoneLog {
        call_id: id.clone(),
        direction: Direction::Inbound,
        ani: ani.into(),
        dnis: "100".into(),
        agent: alice.clone(),
        queue: Some(QueueId::new("sales")),
        attached: Default::default(),
        arrived_ms: arrived,
        answered_ms: arrived + 12_000,
    }));
    let events = [
        UpdateEvent::Hold {
            agent: alice.clone(),
        },
        UpdateEvent::Transfer {
            from: alice.clone(),
            to: TransferTarget::ToQueue(QueueId::new("support")),
            reason: None,
        },
        UpdateEvent::AgentConnected { agent: bob.clone() },
        UpdateEvent::WrapUpCode {
            agent: bob.clone(),
            code: "SALE".into(),
        },
        UpdateEvent::Ended {
            terminal: TerminalReason::Completed,
            duration_ms: 95_000,
            talk_ms: 80_000,
        },
    ];
    let mut bodies = vec![(0, create, arrived + 12_000), (0, log, arrived + 12_000)];
    for (n, event) in events.into_iter().enumerate() {
        let seq = n as u32 + 1;
        let body = CrmBody::InteractionUpdate(InteractionUpdate { event, seq });
        bodies.push((seq, body, arrived + 20_000 + 10_000 * n as u64));
    }
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, (n, body, at))| {
            let r = CrmRecord::new("edge-01", &id, n, body, at);
            Record {
                seq: i as u64 + 1,
                correlation_id: r.correlation_id,
                interaction_key: r.interaction_key,
                kind: r.kind,
                body: serde_json::to_vec(&r.body).unwrap(),
                created_at_ms: r.at_ms,
                attempts: 0,
                next_attempt_at_ms: 0,
                last_error: None,
            }
        })
        .collect()
}

/// Issue 22, point 5: a whole call's real records, in table and openframe
/// modes, land in ServiceNow's own fields. No key of any write is one the
/// table lacks (so none is silently dropped); the interaction carries the
/// caller (`opened_for`, found by mobile phone among users whose other
/// numbers differ; `caller_phone_number`), the queue, a work note per
/// update, bob as `assigned_to` after he answered the transfer, and it is
/// closed with `closed_at`; the phone log is linked and carries the
/// number, its start, the caller as `contact` and alice as `agent`. A
/// number two users share finds neither.
#[actix_rt::test]
async fn a_whole_call_lands_in_servicenow_fields_in_both_modes() {
    const SALES: &str = "0123456789abcdef0123456789abcdef";
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let em = &rig.em;
    let alice = em.seed_row("sys_user", row(&[("user_name", "alice")]));
    let bob = em.seed_row("sys_user", row(&[("user_name", "bob")]));
    em.seed_row(
        "sys_user",
        row(&[("user_name", "dan"), ("phone", "+15550199")]),
    );
    let carol = em.seed_row(
        "sys_user",
        row(&[
            ("user_name", "carol"),
            ("phone", "+15550111"),
            ("mobile_phone", "+15550100"),
        ]),
    );
    em.seed_row(
        "sys_user",
        row(&[("user_name", "eve"), ("home_phone", "+15550177")]),
    );
    em.seed_row(
        "sys_user",
        row(&[("user_name", "fay"), ("mobile_phone", "+15550177")]),
    );
    for mode in [ServiceNowMode::Table, ServiceNowMode::Openframe] {
        let (sn, _dir) = rig.another(|c, _| {
            c.mode = mode;
            c.awa_queues.insert("sales".into(), SALES.into());
        });
        let call = format!("{mode:?}-call");
        for r in whole_call(&call, "+15550100") {
            let kind = r.kind;
            let out = one(&sn, r).await;
            assert!(
                matches!(out, Outcome::Delivered { .. }),
                "{mode:?} {kind:?}: {out:?}"
            );
        }
        let dropped = em.dropped_keys();
        assert!(dropped.is_empty(), "{mode:?}: {dropped:?}");
        assert_eq!(em.stats().invalid_references, 0, "{mode:?}");
        let i = interaction(em, &call);
        assert_eq!(i["state"], "closed_complete", "{mode:?}");
        assert_eq!(i["closed_at"], "2026-11-21 16:36:00", "{mode:?}");
        assert_eq!(i["opened_at"], "2026-11-21 16:35:00", "{mode:?}");
        assert_eq!(i["opened_for"], carol.as_str(), "{mode:?}");
        assert_eq!(i["caller_phone_number"], "+15550100", "{mode:?}");
        assert_eq!(i["type"], "phone", "{mode:?}");
        assert_eq!(i["direction"], "inbound", "{mode:?}");
        assert_eq!(
            i["short_description"], "Inbound call from +15550100 (accepted)",
            "{mode:?}"
        );
        assert_eq!(i["assigned_to"], bob.as_str(), "{mode:?}");
        if mode == ServiceNowMode::Table {
            assert_eq!(i["queue"], SALES, "{mode:?}");
        }
        let notes = i["work_notes"].as_str().unwrap_or("");
        for note in [
            "edgecc hold: caller put on hold by agent alice",
            "edgecc transfer: transferred by agent alice to queue support",
            "edgecc agent_connected: agent bob took the call",
            "edgecc wrap_up_code: wrap-up code SALE by agent bob",
            "edgecc ended: call ended (completed), 95 s after it arrived, 80 s talking",
        ] {
            assert!(notes.contains(note), "{mode:?}: {note:?} not in {notes:?}");
        }
        assert_eq!(i["channel_metadata_table"], "sn_openframe_phone_log");
        let log_id = i["channel_metadata_document"].as_str().unwrap();
        let log = em
            .table_rows("sn_openframe_phone_log")
            .into_iter()
            .find(|l| l["sys_id"] == log_id)
            .unwrap_or_else(|| panic!("{mode:?}: no phone log {log_id}"));
        assert_eq!(log["call_id"], call.as_str(), "{mode:?}");
        assert_eq!(log["phone_number"], "+15550100", "{mode:?}");
        assert_eq!(log["start_time"], "2026-11-21 16:35:12", "{mode:?}");
        assert_eq!(log["contact"], carol.as_str(), "{mode:?}");
        assert_eq!(log["agent"], alice.as_str(), "{mode:?}");

        // A number two users carry: nobody is opened_for.
        let shared = format!("{mode:?}-shared");
        let create = whole_call(&shared, "+15550177").remove(0);
        assert!(matches!(one(&sn, create).await, Outcome::Delivered { .. }));
        assert_eq!(interaction(em, &shared).get("opened_for"), None, "{mode:?}");
    }
    rig.em.stop().await;
}

/// Openframe mode, issue 22 point 3: a call without a number (a withheld
/// ANI) is created with the documented placeholder as `userPhoneNumber`
/// (the API requires one; "" is refused), and a FAILURE naming a required
/// parameter is a dead letter, not retried forever.
#[actix_rt::test]
async fn openframe_anonymous_caller_and_required_failure() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let em = &rig.em;
    let create = whole_call("anon", "").remove(0);
    let out = one(&rig.adapter, create).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let sent = em.last_request().unwrap().body;
    let sent: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["interaction"]["userPhoneNumber"], ANONYMOUS_CALLER);
    let i = interaction(em, "anon");
    assert_eq!(i.get("caller_phone_number"), None);
    assert_eq!(
        i["short_description"],
        "Inbound call from anonymous (accepted)"
    );

    em.set_mode(edgecc::crm::emulator::Mode::Failure {
        message: "userPhoneNumber is required".into(),
    })
    .await
    .unwrap();
    match one(&rig.adapter, whole_call("anon-2", "+15550100").remove(0)).await {
        Outcome::Permanent { reason, .. } => assert!(reason.contains("required"), "{reason}"),
        other => panic!("{other:?}"),
    }
    rig.em.stop().await;
}

/// Openframe mode checks its lookup field in `sys_dictionary` before the
/// first delivery: an instance whose `interaction` lacks
/// `u_edgecc_call_id` dead-letters the create with a reason naming the
/// key, and nothing is posted.
#[actix_rt::test]
async fn openframe_checks_its_key_field_in_the_dictionary() {
    let mut config = EmulatorConfig::default();
    if let Some(fields) = config
        .sn_tables
        .get_mut("interaction")
        .and_then(|t| t.fields.as_mut())
    {
        fields.retain(|f| f != "u_edgecc_call_id");
    }
    let rig = sn_rig(config, ServiceNowMode::Openframe, |_, _| {}).await;
    match one(&rig.adapter, accepted(1, "c-1", "alice")).await {
        Outcome::Permanent { reason, .. } => assert!(
            reason.contains("crm.servicenow.table_interaction_key_field"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(rig.em.table_rows("interaction").is_empty());
    rig.em.stop().await;
}

/// A call of edgecc queue `queue` that timed out: its interaction's create
/// (which must be delivered) and then its callback work item, whose
/// outcome is returned.
async fn timed_out(sn: &dyn CrmAdapter, call: &str, queue: &str) -> (Record, Outcome) {
    let create = record(
        1,
        call,
        RecordKind::InteractionCreate,
        json!({"ani": "+15550100", "direction": "inbound", "reason": "queue_timeout",
               "agent": null, "queue": queue, "attached": {}}),
    );
    let out = one(sn, create).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let work = record(
        2,
        call,
        RecordKind::WorkItemCreate,
        json!({"type": "callback", "reason": "queue_timeout",
               "callback_number": "+15550100", "queue": queue, "waited_ms": 60000}),
    );
    let out = one(sn, work.clone()).await;
    (work, out)
}

/// The `awa_work_item`s whose document is `interaction_id`.
fn work_items(em: &EmulatorHandle, interaction_id: &str) -> Vec<Value> {
    em.table_rows("awa_work_item")
        .into_iter()
        .filter(|w| w["document_id"] == interaction_id)
        .collect()
}

/// A timed-out call: the interaction is created new, and its work item is
/// routed to the configured AWA queue, where ServiceNow makes the
/// `awa_work_item` linked to the interaction; a replay re-routes the same
/// work item rather than making a second. A queue the instance lacks is
/// a permanent configuration error. Both openframe and table modes.
#[actix_rt::test]
async fn timed_out_call_is_routed_as_awa_work() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let em = &rig.em;
    let queue = em.seed_row("awa_queue", row(&[("name", "Callbacks")]));
    for (n, mode) in [ServiceNowMode::Openframe, ServiceNowMode::Table]
        .into_iter()
        .enumerate()
    {
        let (sn, _dir) = rig.another(|c, _| {
            c.mode = mode;
            c.awa_queue = Some(queue.clone());
        });
        let call = format!("t-{n}");
        let (work, out) = timed_out(&sn, &call, "sales").await;
        let created = interaction(em, &call);
        assert_eq!(created["state"], "new", "{mode:?}");
        let interaction_id = created["sys_id"].as_str().unwrap().to_string();
        match out {
            Outcome::Delivered { link: Some(link) } => {
                assert!(link.contains("awa_work_item"), "{mode:?} {link}")
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        let request = em.last_request().unwrap();
        assert_eq!(
            request.path,
            format!("/api/now/awa/queues/{queue}/work_item"),
            "{mode:?}"
        );
        let items = work_items(em, &interaction_id);
        assert_eq!(items.len(), 1, "{mode:?}");
        assert_eq!(items[0]["document_table"], "interaction");
        assert_eq!(items[0]["queue"], queue.as_str());
        assert_eq!(
            interaction(em, &call)["caller_phone_number"],
            "+15550100",
            "{mode:?}"
        );
        // A replay: the active work item is re-routed, not duplicated.
        assert!(matches!(one(&sn, work).await, Outcome::Delivered { .. }));
        assert_eq!(work_items(em, &interaction_id).len(), 1, "{mode:?}");
    }

    // A queue the instance lacks: permanent, naming the key.
    let (sn, _dir) =
        rig.another(|c, _| c.awa_queue = Some("0123456789abcdef0123456789abcdef".into()));
    match timed_out(&sn, "t-9", "sales").await.1 {
        Outcome::Permanent {
            status: 404,
            reason,
        } => {
            assert!(reason.contains("crm.servicenow.awa_queue "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    rig.em.stop().await;
}

/// A callback goes to the AWA queue mapped to its call's own edgecc queue
/// (`[crm.servicenow.awa_queues]`), not to the single default
/// `awa_queue`; a call of an unmapped queue falls back to the default.
/// With the mapping alone (no default) table mode routes through AWA as
/// well, and a mapped queue the instance lacks is a dead letter naming
/// that mapping's key. Both openframe and table modes.
#[actix_rt::test]
async fn a_callback_goes_to_its_calls_mapped_awa_queue() {
    let rig = plain_rig(ServiceNowMode::Openframe).await;
    let em = &rig.em;
    let sales = em.seed_row("awa_queue", row(&[("name", "Sales")]));
    let fallback = em.seed_row("awa_queue", row(&[("name", "Callbacks")]));
    let routed_to = |call: &str| {
        let id = interaction(em, call)["sys_id"]
            .as_str()
            .unwrap()
            .to_string();
        let items = work_items(em, &id);
        assert_eq!(items.len(), 1, "{call}: {items:?}");
        items[0]["queue"].as_str().unwrap_or("").to_string()
    };
    for (n, mode) in [ServiceNowMode::Openframe, ServiceNowMode::Table]
        .into_iter()
        .enumerate()
    {
        let (sn, _dir) = rig.another(|c, _| {
            c.mode = mode;
            c.awa_queue = Some(fallback.clone());
            c.awa_queues.insert("sales".into(), sales.clone());
        });
        let out = timed_out(&sn, &format!("m-{n}"), "sales").await.1;
        assert!(matches!(out, Outcome::Delivered { .. }), "{mode:?} {out:?}");
        assert_eq!(routed_to(&format!("m-{n}")), sales, "{mode:?}");
        let out = timed_out(&sn, &format!("u-{n}"), "support").await.1;
        assert!(matches!(out, Outcome::Delivered { .. }), "{mode:?} {out:?}");
        assert_eq!(routed_to(&format!("u-{n}")), fallback, "{mode:?}");

        let (sn, _dir) = rig.another(|c, _| {
            c.mode = mode;
            c.awa_queues.insert("sales".into(), sales.clone());
        });
        let out = timed_out(&sn, &format!("o-{n}"), "sales").await.1;
        assert!(matches!(out, Outcome::Delivered { .. }), "{mode:?} {out:?}");
        assert_eq!(routed_to(&format!("o-{n}")), sales, "{mode:?}");
    }
    let missing = "0123456789abcdef0123456789abcdef".to_string();
    let (sn, _dir) = rig.another(|c, _| {
        c.awa_queue = Some(fallback.clone());
        c.awa_queues.insert("sales".into(), missing.clone());
    });
    match timed_out(&sn, "x-1", "sales").await.1 {
        Outcome::Permanent {
            status: 404,
            reason,
        } => assert!(
            reason.contains("crm.servicenow.awa_queues.sales"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    rig.em.stop().await;
}

/// The sub of the tests' assertions: the integration user's `user_name`.
const JWT_SUB: &str = "edgecc.integration";

/// An emulator config whose JWT verifier map holds the fixture's public
/// key under Kid `edgecc-1`, for client `cid`; subs matched on
/// `user_name` (the default "User field").
fn jwt_emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        oauth_client: Some(("cid".into(), "csecret".into())),
        jwt: Some(JwtVerifier {
            public_key_pem: std::fs::read(jwt_fixture("public.pem")).unwrap(),
            kid: Some("edgecc-1".into()),
            ..JwtVerifier::default()
        }),
        ..EmulatorConfig::default()
    }
}

/// Makes `em`'s instance know the integration user ([`JWT_SUB`]).
fn seed_integration_user(em: &EmulatorHandle) {
    em.seed_row(
        "sys_user",
        row(&[("user_name", JWT_SUB), ("email", "edgecc@example.com")]),
    );
}

/// A JWT bearer config signing with fixture `key` as [`JWT_SUB`].
fn jwt_tune(key: &'static str) -> impl FnOnce(&mut ServiceNowConfig, &Path) {
    move |c, dir| {
        c.auth = ServiceNowAuth::OauthJwtBearer;
        c.user = Some(JWT_SUB.into());
        c.password_file = None;
        c.oauth_client_id = Some("cid".into());
        c.oauth_client_secret_file = Some(secret_file(dir, "cs", b"csecret"));
        c.jwt_key_file = Some(jwt_fixture(key));
        c.jwt_kid = Some("edgecc-1".into());
    }
}

/// The JWT bearer grant: an assertion signed with the configured key gets
/// a token and the record is delivered with it; one signed with another
/// key is refused (held with the breaker, as bad credentials are).
#[actix_rt::test]
async fn jwt_bearer_grant_good_and_wrongly_signed() {
    let rig = sn_rig(
        jwt_emulator_config(),
        ServiceNowMode::Openframe,
        jwt_tune("key.pem"),
    )
    .await;
    let em = &rig.em;
    seed_integration_user(em);
    assert!(matches!(
        one(&rig.adapter, accepted(1, "j-1", "alice")).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(em.stats().tokens_issued, 1);
    assert!(em
        .last_request()
        .unwrap()
        .header("authorization")
        .unwrap()
        .starts_with("Bearer "));

    let (forged, _other) = rig.another(|c, _| c.jwt_key_file = Some(jwt_fixture("other_key.pem")));
    let rejected = em.stats().rejected;
    match one(&forged, accepted(2, "j-2", "alice")).await {
        Outcome::Retry {
            crm_down: true,
            reason,
            ..
        } => assert!(reason.contains("OAuth token request: HTTP 401"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(em.stats().tokens_issued, 1);
    assert!(em.stats().rejected > rejected);

    // Well signed, but for a sub no sys_user carries: no token either.
    let (stranger, _third) = rig.another(|c, _| c.user = Some("nobody".into()));
    match one(&stranger, accepted(3, "j-3", "alice")).await {
        Outcome::Retry {
            crm_down: true,
            reason,
            ..
        } => assert!(reason.contains("OAuth token request: HTTP 401"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(em.stats().tokens_issued, 1);
    rig.em.stop().await;
}

/// The emulator's checks of an assertion, posted by hand: a good one is
/// accepted once (its `jti` again is a replay), an expired one (past the
/// five minutes of clock skew), one for another audience, one without the
/// verifier map's Kid, one signed with another key and one whose `sub`
/// is no `sys_user`'s `user_name` (the endpoint's User field) are refused,
/// the last with ServiceNow's OAuth error body.
#[actix_rt::test]
async fn jwt_bearer_assertions_checked_by_the_emulator() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let em = EmulatorHandle::start(jwt_emulator_config()).await.unwrap();
    seed_integration_user(&em);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key =
        |name: &str| EncodingKey::from_rsa_pem(&std::fs::read(jwt_fixture(name)).unwrap()).unwrap();
    let sign = |key_name: &str, kid: Option<&str>, claims: Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        encode(&header, &claims, &key(key_name)).unwrap()
    };
    let claims_of = |sub: &str, jti: &str, aud: &str, exp: u64| {
        json!({"iss": "cid", "sub": sub, "aud": aud,
               "iat": now, "exp": exp, "jti": jti})
    };
    let claims = |jti: &str, aud: &str, exp: u64| claims_of(JWT_SUB, jti, aud, exp);
    let client = awc::Client::default();
    let token = |assertion: String| {
        let client = client.clone();
        let url = format!("{}/oauth_token.do", em.url());
        async move {
            let form = [
                ("grant_type", JWT_BEARER_GRANT.to_string()),
                ("client_id", "cid".to_string()),
                ("client_secret", "csecret".to_string()),
                ("assertion", assertion),
            ];
            let mut answer = client.post(url).send_form(&form).await.unwrap();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            (answer.status().as_u16(), body)
        }
    };
    let good = sign("key.pem", Some("edgecc-1"), claims("a", "cid", now + 300));
    assert_eq!(token(good.clone()).await.0, 200);
    assert_eq!(token(good).await.0, 401, "a replayed jti");
    let expired = sign("key.pem", Some("edgecc-1"), claims("b", "cid", now - 600));
    assert_eq!(token(expired).await.0, 401, "expired");
    let aud = sign("key.pem", Some("edgecc-1"), claims("c", "other", now + 300));
    assert_eq!(token(aud).await.0, 401, "wrong audience");
    let kid = sign("key.pem", Some("nope"), claims("d", "cid", now + 300));
    assert_eq!(token(kid).await.0, 401, "unknown kid");
    let forged = sign(
        "other_key.pem",
        Some("edgecc-1"),
        claims("e", "cid", now + 300),
    );
    assert_eq!(token(forged).await.0, 401, "wrongly signed");
    for sub in ["nobody", "edgecc@example.com"] {
        let unknown = sign(
            "key.pem",
            Some("edgecc-1"),
            claims_of(sub, sub, "cid", now + 300),
        );
        let (status, body) = token(unknown).await;
        assert_eq!(status, 401, "sub {sub}");
        assert_eq!(
            body,
            json!({"error_description": "access_denied", "error": "server_error"}),
            "sub {sub}"
        );
    }
    assert_eq!(em.stats().tokens_issued, 1);
    em.stop().await;
}

/// The `awa_service_channel` sys_id of the tests (any 32 hex digits: the
/// emulator checks the form of a reference, not its target).
const PHONE_CHANNEL: &str = "5a1e0c0a0b0c0d0e0f101112131415ff";

/// Goal: no edgecc string ever lands in a reference field. Method: table
/// mode with `awa_queues` mapping `sales` and a `service_channel`; an
/// accepted call of `sales`, one of an unmapped queue, a transfer to
/// `sales` and a callback work item of `sales`; then the same records in
/// openframe mode. The interaction's `channel` and `queue` and the work
/// item's `queue` hold the configured sys_ids, the unmapped queue leaves
/// `queue` empty, and the emulator counted no reference holding something
/// other than a sys_id.
#[actix_rt::test]
async fn queue_and_channel_are_sent_as_sys_ids() {
    let rig = plain_rig(ServiceNowMode::Table).await;
    let em = &rig.em;
    let sales = em.seed_row("awa_queue", row(&[("name", "Sales")]));
    let (sn, _dir) = rig.another(|c, _| {
        c.awa_queues.insert("sales".into(), sales.clone());
        c.service_channel = Some(PHONE_CHANNEL.into());
    });

    assert!(matches!(
        one(&sn, accepted(1, "r-1", "alice")).await,
        Outcome::Delivered { .. }
    ));
    let created = interaction(&em, "r-1");
    assert_eq!(created["queue"], sales.as_str());
    assert_eq!(created["channel"], PHONE_CHANNEL);

    let support = record(
        2,
        "r-2",
        RecordKind::InteractionCreate,
        json!({"ani": "+15550100", "direction": "inbound", "reason": "accepted",
               "agent": null, "queue": "support", "channel": "phone", "attached": {}}),
    );
    assert!(matches!(one(&sn, support).await, Outcome::Delivered { .. }));
    let unmapped = interaction(&em, "r-2");
    assert_eq!(unmapped.get("queue"), None);
    assert_eq!(unmapped["channel"], PHONE_CHANNEL);

    let transfer = record(
        3,
        "r-2",
        RecordKind::InteractionUpdate,
        json!({"event": "transfer", "from": "alice", "to_queue": "sales", "seq": 1}),
    );
    assert!(matches!(
        one(&sn, transfer).await,
        Outcome::Delivered { .. }
    ));
    assert_eq!(interaction(&em, "r-2")["queue"], sales.as_str());

    let work = record(
        4,
        "r-2",
        RecordKind::WorkItemCreate,
        json!({"type": "callback", "reason": "queue_timeout",
               "callback_number": "+15550100", "queue": "sales", "waited_ms": 1000}),
    );
    assert!(matches!(one(&sn, work).await, Outcome::Delivered { .. }));
    // Routed to the mapped queue, where ServiceNow makes the work item.
    let r2 = interaction(em, "r-2")["sys_id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = work_items(em, &r2);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["queue"], sales.as_str());

    // Openframe mode sends no queue or channel of edgecc's either.
    let (sn, _other) = rig.another(|c, _| {
        c.mode = ServiceNowMode::Openframe;
        c.awa_queues.insert("sales".into(), sales.clone());
    });
    for r in [
        accepted(1, "o-1", "alice"),
        record(
            2,
            "o-1",
            RecordKind::InteractionUpdate,
            json!({"event": "transfer", "from": "alice", "to_queue": "support", "seq": 1}),
        ),
    ] {
        assert!(matches!(one(&sn, r).await, Outcome::Delivered { .. }));
    }

    for table in ["interaction", "awa_work_item"] {
        for r in em.table_rows(table) {
            for field in ["queue", "channel"] {
                let value = r.get(field).and_then(Value::as_str).unwrap_or("");
                assert!(
                    value.is_empty() || edgecc::crm::servicenow::is_sys_id(value),
                    "{table}.{field} = {value:?}"
                );
            }
        }
    }
    assert_eq!(em.stats().invalid_references, 0);
    em.stop().await;
}

/// The emulator counts what a real instance would store as a broken
/// reference, so the test above can fail: a raw queue name written
/// through the Table API is seen.
#[actix_rt::test]
async fn servicenow_emulator_counts_a_name_in_a_reference_field() {
    let em = EmulatorHandle::start(EmulatorConfig::default())
        .await
        .unwrap();
    let client = awc::Client::default();
    let answer = client
        .post(format!("{}/api/now/table/interaction", em.url()))
        .basic_auth("edgecc", "pw")
        .send_json(&json!({"queue": "sales", "channel": PHONE_CHANNEL}))
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    assert_eq!(em.stats().invalid_references, 1);
    em.stop().await;
}

/// A reference sys_id in the config that is not one is refused by
/// `check-config`, naming the key and the file.
#[test]
fn servicenow_reference_sys_ids_are_checked_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    for (extra, key) in [
        (
            "service_channel = \"phone\"\n",
            "crm.servicenow.service_channel",
        ),
        (
            "[crm.servicenow.awa_queues]\nsales = \"Sales\"\n",
            "crm.servicenow.awa_queues.sales",
        ),
    ] {
        let text = format!(
            "[crm]\nkind = \"servicenow\"\n[crm.servicenow]\ninstance_url = \"https://acme.service-now.com\"\nmode = \"table\"\n{extra}"
        );
        std::fs::write(&file, text).unwrap();
        let o = crate::util::run(&["check-config", f]);
        assert_eq!(o.status.code(), Some(1));
        let e = crate::util::stderr(&o);
        assert!(e.contains(f) && e.contains(key), "{e}");
    }
}
