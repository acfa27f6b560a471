//! Waiting callers over ARI against the emulator: prompt lists played as
//! one `POST /channels/{id}/play` with comma-separated media, stopped with
//! `DELETE /playbacks/{id}` and the music restarted after (a play
//! suspends it in Asterisk); a prompt to a channel Asterisk does not know
//! refused as an unknown leg; and the callback digit from the wire
//! (`ChannelDtmfReceived`): the caller hears the confirmation and is hung
//! up, keeps the place, and is dialled through `outbound_endpoint` only
//! after the agent's leg is in the call's bridge (issue 18).

use edgecc::ari_emulator::EndpointBehaviour as B;
use edgecc_actors::config::CallbackConfig;
use edgecc_actors::ids::BridgeId;
use edgecc_actors::ports::PromptMedia;
use edgecc_actors::{LegId, PbxCommand, PbxError, PbxPort, RecordKind};

use crate::ari_harness::*;

const A1: &str = "PJSIP/3101";

/// Goal: a prompt list reaches Asterisk as one playback of several media,
/// a stop cuts it and the caller's music comes back, and a prompt to a
/// channel Asterisk does not know is an unknown leg. Method: a caller
/// waits (no agent Ready); the test sends the port's commands as the call
/// would and reads what the emulator recorded.
#[actix_rt::test]
async fn prompts_play_as_one_list_and_stop() {
    let h = AriHarness::start(config(&[("a1", A1)], 8_000), &[]).await;
    h.emu.set_playback_ms(5_000);
    let call = h.inbound("5551234");
    h.until_call(&call, "queued", |c| c.phase == "queued").await;
    let moh = format!("/ari/channels/{call}/moh");
    h.until_emu("music for the caller", |s| {
        s.channel(&call).is_some_and(|c| c.moh)
    })
    .await;
    let moh_before = h.requests("POST", &moh);
    let media = vec![
        PromptMedia::Sound("queue-thereare".into()),
        PromptMedia::Number(2),
        PromptMedia::Sound("queue-callswaiting".into()),
    ];
    h.ari
        .send(PbxCommand::PlayPrompts {
            leg_id: LegId::new(call.clone()),
            media,
        })
        .await
        .expect("the play is accepted");
    let played = h.emu.played();
    assert_eq!(played.len(), 1, "{played:?}");
    assert_eq!(played[0].target_uri, format!("channel:{call}"));
    assert_eq!(
        played[0].media,
        [
            "sound:queue-thereare",
            "number:2",
            "sound:queue-callswaiting"
        ]
    );
    assert!(played[0].id.ends_with("~prompt"), "{}", played[0].id);
    h.ari
        .send(PbxCommand::StopPrompts {
            leg_id: LegId::new(call.clone()),
        })
        .await
        .expect("the stop is accepted");
    assert!(
        h.emu.played()[0].stopped,
        "DELETE /playbacks/{{id}} stopped it"
    );
    assert_eq!(
        h.requests("DELETE", &format!("/ari/playbacks/{}", played[0].id)),
        1
    );
    until("music restarted after the prompt", || {
        h.requests("POST", &moh) > moh_before
    })
    .await;
    // Nothing playing any more: a second stop sends nothing.
    h.ari
        .send(PbxCommand::StopPrompts {
            leg_id: LegId::new(call.clone()),
        })
        .await
        .unwrap();
    assert_eq!(h.requests("DELETE", "/ari/playbacks/"), 1);
    let unknown = h
        .ari
        .send(PbxCommand::PlayPrompts {
            leg_id: LegId::new("no-such-channel"),
            media: vec![PromptMedia::Number(1)],
        })
        .await;
    assert_eq!(unknown, Err(PbxError::UnknownLeg("no-such-channel".into())));
}

/// Goal: the queue's callback digit, as Asterisk reports it, makes the
/// caller a callback entry; the agent is connected before the caller is
/// dialled back, and the call is then answered once. Method: the caller
/// presses 1 while no agent is Ready; a1 goes Ready; the order of the
/// emulator's requests shows the agent's leg added to the bridge before
/// the originate of the caller's number.
#[actix_rt::test]
async fn callback_digit_dials_the_caller_after_the_agent() {
    let mut cfg = config(&[("a1", A1)], 8_000);
    cfg.queues[0].callback = CallbackConfig {
        digit: Some("1".into()),
        ..CallbackConfig::default()
    };
    let back = "Local/5551234@edgecc-outbound";
    let h = AriHarness::start(
        cfg,
        &[
            (A1, B::AnswerAfter { ring_ms: 200 }),
            (back, B::AnswerAfter { ring_ms: 300 }),
        ],
    )
    .await;
    h.emu.set_playback_ms(100);
    let call = h.inbound("5551234");
    h.until_call(&call, "queued", |c| c.phase == "queued").await;
    h.emu.caller_dtmf(&call, '1').unwrap();
    h.until_emu("the caller hung up after the confirmation", |s| {
        s.channel(&call).is_none()
    })
    .await;
    assert!(h
        .emu
        .played()
        .iter()
        .any(|p| p.media == ["sound:queue-callback-confirm"]));
    let view = h.call(&call).await.expect("the call goes on");
    assert_eq!(view.phase, "queued", "the place is kept");
    assert!(h.kinds(&call).is_empty());
    h.ready("a1").await;
    let customer = format!("{call}~c");
    let bridge = BridgeId::main(&call.as_str().into()).0;
    h.until_emu("agent and caller bridged", |s| {
        s.bridge(&bridge)
            .is_some_and(|b| b.channels.contains(&customer) && b.channels.len() == 2)
    })
    .await;
    h.until_agent("a1", "talking", talking).await;
    h.until_call(&call, "connected", |c| c.phase == "connected")
        .await;
    let requests = h.emu.requests();
    let add_agent = requests
        .iter()
        .position(|r| {
            r.path
                .starts_with(&format!("/ari/bridges/{bridge}/addChannel"))
                && !r.path.contains("~c")
        })
        .expect("the agent joined the bridge");
    let dial_back = requests
        .iter()
        .position(|r| {
            r.method == "POST"
                && r.path.starts_with("/ari/channels")
                && (r.path.contains(&format!("channelId={call}~c"))
                    || r.path.contains(&format!("channelId={call}%7Ec")))
        })
        .expect("the caller was dialled");
    assert!(
        add_agent < dial_back,
        "agent first: {add_agent} < {dial_back}"
    );
    let kinds = h.kinds(&call);
    assert_eq!(count(&kinds, RecordKind::InteractionCreate), 1);
    assert_eq!(count(&kinds, RecordKind::PhoneLogCreate), 1);
    assert_eq!(count(&kinds, RecordKind::WorkItemCreate), 0);
}
