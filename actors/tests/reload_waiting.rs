//! A reload reaches the callers already waiting, not only the next ones:
//! their announcements and callback rules follow the new configuration.
//! Actors are driven through the simulated PBX with tokio's paused clock
//! and a reload through [`ApplyConfig`], as SIGHUP sends it (issue 18).

mod util;

use edgecc_actors::config::{AnnounceConfig, CallbackConfig};
use edgecc_actors::registry::ApplyConfig;
use edgecc_actors::sim::{Caller, GetPlayed, PressDigit};
use edgecc_actors::*;
use util::*;

/// Queue `q` of [`basic`] with one agent, waits of up to 10 minutes.
fn quiet() -> ContactCenterConfig {
    let mut cfg = basic(1);
    cfg.queues[0].max_wait_ms = 600_000;
    cfg
}

fn caller_from(ani: &str, talk_ms: Option<u64>) -> Caller {
    let mut c = Caller::new(ani, "800");
    c.talk_ms = talk_ms;
    c
}

/// What was played to `leg`, as (ms since start, media URIs).
async fn played_to(h: &Harness, leg: &CallId) -> Vec<(u64, Vec<String>)> {
    let played = h.sim.send(GetPlayed).await.unwrap();
    played
        .into_iter()
        .filter(|p| p.leg_id.as_str() == leg.as_str())
        .map(|p| (p.at_ms, p.media))
        .collect()
}

/// Goal: announcements turned on, changed and turned off by a reload apply
/// to a caller already waiting. Method: c2 waits behind c1 (talking to
/// a1); a reload at 20 s turns announcements on every 15 s (c2 hears them
/// at 35 s and 50 s), one at 60 s sets them to 30 s (next at 90 s), one at
/// 100 s turns them off (nothing more).
#[actix_rt::test]
async fn announcement_changes_reach_waiting_callers() {
    tokio::time::pause();
    let cfg = quiet();
    let h = start(cfg.clone(), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(500_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    advance(20_000).await;
    let reload = |interval_ms: u64| {
        let mut cfg = cfg.clone();
        cfg.queues[0].announcements = AnnounceConfig {
            interval_ms,
            ..AnnounceConfig::default()
        };
        ApplyConfig(cfg)
    };
    h.registry.send(reload(15_000)).await.unwrap().unwrap();
    advance(40_000).await;
    let at =
        |plays: Vec<(u64, Vec<String>)>| plays.into_iter().map(|p| p.0 / 1_000).collect::<Vec<_>>();
    assert_eq!(
        at(played_to(&h, &c2).await),
        vec![35, 50],
        "every 15 s from the reload"
    );
    h.registry.send(reload(30_000)).await.unwrap().unwrap();
    advance(40_000).await;
    assert_eq!(
        at(played_to(&h, &c2).await),
        vec![35, 50, 90],
        "the new interval"
    );
    h.registry.send(reload(0)).await.unwrap().unwrap();
    advance(100_000).await;
    assert_eq!(at(played_to(&h, &c2).await), vec![35, 50, 90], "turned off");
}

/// Goal: a callback digit a reload adds works for a caller already
/// waiting, and a changed max wait keeps the announcements going. Method:
/// a reload adds digit 1 and a longer max wait; c2 presses 1.
#[actix_rt::test]
async fn callback_digit_added_by_a_reload_reaches_waiting_callers() {
    tokio::time::pause();
    let mut cfg = quiet();
    cfg.queues[0].announcements = AnnounceConfig {
        interval_ms: 15_000,
        ..AnnounceConfig::default()
    };
    let h = start(cfg.clone(), 1);
    h.ready("a1").await;
    h.call(caller_from("+1555000001", Some(500_000))).await;
    let c2 = h.call(caller_from("+1555000002", None)).await;
    advance(20_000).await;
    let mut next = cfg.clone();
    next.queues[0].max_wait_ms = 700_000;
    next.queues[0].callback = CallbackConfig {
        digit: Some("1".into()),
        ..CallbackConfig::default()
    };
    h.registry.send(ApplyConfig(next)).await.unwrap().unwrap();
    advance(20_000).await;
    assert_eq!(
        played_to(&h, &c2).await.len(),
        2,
        "announcements go on after the max wait moved: {:?}",
        played_to(&h, &c2).await
    );
    h.sim
        .send(PressDigit {
            leg_id: LegId::new(c2.as_str()),
            digit: '1',
        })
        .await
        .unwrap();
    advance(100).await;
    assert_eq!(
        played_to(&h, &c2).await.last().map(|p| p.1.clone()),
        Some(vec!["sound:queue-callback-confirm".to_string()])
    );
    assert!(h.leg(c2.as_str()).await.is_none(), "the caller was hung up");
}
