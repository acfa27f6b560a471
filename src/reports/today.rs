//! An agent's own figures for "today", as its desktop shows them: from the
//! site's local midnight (`[site] time_zone`, an IANA name; UTC when
//! unset) to now, DST included, from the same call detail records and
//! agent intervals as the reports.
//!
//! The history is binned at read time, not stored as day rows, so "today"
//! is 15-minute rows that start at local midnight itself (not at a UTC
//! quarter hour), summed: exact for every zone, including an offset that
//! is not a multiple of 15 minutes (none in today's tz database; only
//! historical local mean times), and for a 23- or 25-hour day at a DST
//! change. A midnight that does not exist locally (a DST jump at 00:00)
//! starts the day at the first instant that does.

use edgecc_actors::cdr::agent::AgentInterval;
use edgecc_actors::cdr::CallDetailRecord;
use edgecc_storage::StateTree;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::config::{ReportSettings, TIME_ZONE_DEFAULT};
use super::figures::{agent_rows, AgentRow, ReportRange};
use super::time::{Interval, DAY_MS};
use super::{history, ReportError};

/// Longest zone name accepted (the tz database's longest is 32).
const ZONE_NAME_LEN_MAX: usize = 64;

/// Checks `[site] time_zone`: the name when it is a zone of this system's
/// tz database, else a sentence saying what is wrong (the caller names the
/// key and the file).
pub fn check_zone(name: Option<&str>) -> Result<String, String> {
    let Some(name) = name else {
        return Ok(TIME_ZONE_DEFAULT.to_string());
    };
    let shown: String = name.chars().take(ZONE_NAME_LEN_MAX).collect();
    if name.is_empty() || name.len() > ZONE_NAME_LEN_MAX {
        return Err(format!(
            "{shown:?} is not a time zone: use an IANA name such as Europe/Berlin"
        ));
    }
    lookup(name).map(|_| name.to_string()).map_err(|e| {
        format!(
            "{shown:?} is not a time zone of this system's tz database (/usr/share/zoneinfo, package tzdata): use an IANA name such as Europe/Berlin ({e})"
        )
    })
}

/// The zone named `name` (UTC without a database lookup).
fn lookup(name: &str) -> Result<TimeZone, jiff::Error> {
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name)
}

/// The zone of a checked name; UTC if the database no longer has it (the
/// tzdata package removed under a running daemon).
pub fn zone(name: &str) -> TimeZone {
    lookup(name).unwrap_or_else(|e| {
        tracing::warn!(time_zone = name, error = %e, "Time zone not found; counting today from midnight UTC.");
        TimeZone::UTC
    })
}

/// The start of the local day `now_ms` falls in, ms since the epoch.
pub fn local_midnight_ms(now_ms: u64, tz: &TimeZone) -> u64 {
    let utc = now_ms - now_ms % DAY_MS;
    let Ok(now) = Timestamp::from_millisecond(i64::try_from(now_ms).unwrap_or(i64::MAX)) else {
        return utc;
    };
    now.to_zoned(tz.clone())
        .start_of_day()
        .ok()
        .and_then(|d| u64::try_from(d.timestamp().as_millisecond()).ok())
        .unwrap_or(utc)
}

/// `agent`'s figures from `from_ms` (its local midnight) to `now_ms`:
/// 15-minute rows from `from_ms` summed into one, with the average handle
/// time over every call it handled in them.
pub fn agent_since(
    calls: &[CallDetailRecord],
    intervals: &[AgentInterval],
    agent: &str,
    from_ms: u64,
    now_ms: u64,
    settings: &ReportSettings,
) -> AgentRow {
    let len = Interval::Min15.ms();
    let buckets = (now_ms.saturating_sub(from_ms) / len) + 1;
    // Rows start at `from_ms` itself, not at a UTC quarter hour.
    let range = ReportRange {
        from_ms,
        to_ms: from_ms + buckets * len,
        interval: Interval::Min15,
    };
    let mine: Vec<CallDetailRecord> = calls
        .iter()
        .filter(|c| {
            c.trail.offers.iter().any(|o| o.agent.0 == agent)
                || c.trail.parties.iter().any(|p| p.agent.0 == agent)
        })
        .cloned()
        .collect();
    let my_intervals: Vec<AgentInterval> = intervals
        .iter()
        .filter(|i| i.agent.0 == agent)
        .cloned()
        .collect();
    let only_me = ReportSettings {
        agents: vec![agent.to_string()],
        ..settings.clone()
    };
    let mut day = AgentRow {
        agent: agent.to_string(),
        start: super::time::format_time(from_ms),
        start_ms: from_ms,
        ..Default::default()
    };
    for r in agent_rows(&mine, &my_intervals, &range, &only_me)
        .into_iter()
        .filter(|r| r.agent == agent)
    {
        day.offered += r.offered;
        day.answered += r.answered;
        day.no_answers += r.no_answers;
        day.talk_ms += r.talk_ms;
        day.wrap_up_ms += r.wrap_up_ms;
        day.ready_ms += r.ready_ms;
        day.reserved_ms += r.reserved_ms;
        day.talking_ms += r.talking_ms;
        day.wrap_up_state_ms += r.wrap_up_state_ms;
        day.not_ready_total_ms += r.not_ready_total_ms;
        for (reason, ms) in r.not_ready_ms {
            *day.not_ready_ms.entry(reason).or_default() += ms;
        }
    }
    // Calls handled: the agent's stints on calls it joined in the day (the
    // rows' own average counts the same).
    let handled = mine
        .iter()
        .flat_map(|c| &c.trail.parties)
        .filter(|p| p.agent.0 == agent && (range.from_ms..range.to_ms).contains(&p.joined_ms))
        .count() as u64;
    day.aht_ms = (handled > 0).then(|| (day.talk_ms + day.wrap_up_ms) / handled);
    let busy = day.reserved_ms + day.talking_ms + day.wrap_up_state_ms;
    let available = busy + day.ready_ms;
    day.occupancy_pct =
        (available > 0).then(|| (busy as f64 * 10_000.0 / available as f64).round() / 100.0);
    day
}

/// `agent`'s figures today in `settings.time_zone`, read from `tree`'s
/// history: the local midnight (ms) and the figures. Blocking (reads the
/// storage).
pub fn agent_today(
    tree: &StateTree,
    agent: &str,
    now_ms: u64,
    settings: &ReportSettings,
) -> Result<(u64, AgentRow), ReportError> {
    let from_ms = local_midnight_ms(now_ms, &zone(&settings.time_zone));
    let h = history::read(tree, from_ms, now_ms + 1)?;
    let row = agent_since(&h.calls, &h.intervals, agent, from_ms, now_ms, settings);
    Ok((from_ms, row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::time::parse_time;
    use edgecc_actors::agent::OfferPurpose;
    use edgecc_actors::call::Direction;
    use edgecc_actors::cdr::{CallTrail, OfferDetail, OfferResult, PartyDetail};
    use edgecc_actors::{AgentId, CallId, OfferToken, QueueId};

    fn at(s: &str) -> u64 {
        parse_time(s).expect("time")
    }

    fn midnight(now: &str, zone_name: &str) -> String {
        let tz = zone(&check_zone(Some(zone_name)).expect("zone"));
        super::super::time::format_time(local_midnight_ms(at(now), &tz))
    }

    /// Half an hour after a UTC midnight, local midnight is half a day away
    /// either side: Auckland (UTC+13 in December) is in the afternoon of the
    /// next day, Honolulu (UTC-10) in the afternoon of the day before;
    /// Kathmandu's +5:45 gives a midnight on a quarter hour; Berlin's
    /// autumn change makes a 25-hour day that began at UTC+2.
    #[test]
    fn local_midnight_far_from_utc() {
        let now = "2026-12-07T00:30:00Z";
        assert_eq!(midnight(now, "UTC"), "2026-12-07T00:00:00Z");
        assert_eq!(midnight(now, "Pacific/Auckland"), "2026-12-06T11:00:00Z");
        assert_eq!(midnight(now, "Pacific/Honolulu"), "2026-12-06T10:00:00Z");
        assert_eq!(midnight(now, "Asia/Kathmandu"), "2026-12-06T18:15:00Z");
        // 23:30 CET on 2026-10-25, the day clocks went back at 03:00 CEST.
        assert_eq!(
            midnight("2026-10-25T22:30:00Z", "Europe/Berlin"),
            "2026-10-24T22:00:00Z"
        );
    }

    /// A wrong zone is refused with a sentence naming it; no zone is UTC.
    #[test]
    fn zone_names_are_checked() {
        assert_eq!(check_zone(None).unwrap(), "UTC");
        assert_eq!(check_zone(Some("Europe/Berlin")).unwrap(), "Europe/Berlin");
        for bad in ["Mars/Olympus", "", "+02:00", "../../etc/passwd"] {
            let e = check_zone(Some(bad)).expect_err(bad);
            assert!(e.contains("is not a time zone"), "{bad}: {e}");
        }
        let file = "[site]\nid = \"x\"\ntime_zone = \"Europe/Berlln\"\n";
        let e = crate::config::Config::parse(file, std::path::Path::new("site.toml"))
            .expect_err("a wrong zone");
        assert_eq!(e.key, "site.time_zone");
        assert!(
            e.to_string().starts_with(
                "site.toml: key `site.time_zone`: \"Europe/Berlln\" is not a time zone"
            ),
            "{e}"
        );
    }

    fn interval(
        agent: &str,
        state: &str,
        reason: Option<&str>,
        from: &str,
        to: &str,
    ) -> AgentInterval {
        AgentInterval {
            agent: AgentId::new(agent),
            state: state.into(),
            reason: reason.map(str::to_owned),
            start_ms: at(from),
            end_ms: at(to),
        }
    }

    /// A call `agent` answered at `joined` and left `talk_ms` later, with a
    /// minute of wrap-up.
    fn call(id: &str, agent: &str, joined: &str, talk_ms: u64) -> CallDetailRecord {
        let joined_ms = at(joined);
        CallDetailRecord {
            call: CallId::new(id),
            interaction_id: None,
            direction: Direction::Inbound,
            ani: "+15550001111".into(),
            dnis: "800".into(),
            arrived_ms: joined_ms - 20_000,
            answered_ms: Some(joined_ms),
            talk_ms,
            wrap_up_ms: 60_000,
            data: Vec::new(),
            trail: CallTrail {
                offers: vec![OfferDetail {
                    agent: AgentId::new(agent),
                    token: OfferToken(1),
                    purpose: OfferPurpose::Queue(QueueId::new("sales")),
                    offered_ms: joined_ms - 5_000,
                    ended_ms: Some(joined_ms),
                    outcome: Some(OfferResult::Answered),
                }],
                parties: vec![PartyDetail {
                    agent: AgentId::new(agent),
                    joined_ms,
                    left_ms: Some(joined_ms + talk_ms),
                    wrap_up_ms: 60_000,
                }],
                ..Default::default()
            },
        }
    }

    /// Goal: in Auckland, half an hour after a UTC midnight, "today" holds
    /// what the agent did since 11:00 UTC the day before (its local
    /// midnight), not since the UTC midnight. Method: fixed times, no
    /// clock: a Not Ready stint across local midnight counts from it, one
    /// across the UTC midnight counts whole, a call before the UTC
    /// midnight counts, the call before local midnight and another
    /// agent's time do not. Counted from the UTC midnight instead, the
    /// call and most of the Not Ready time are missing.
    #[test]
    fn today_starts_at_local_midnight_far_from_utc() {
        let now_ms = at("2026-12-07T00:30:00Z");
        let tz = zone("Pacific/Auckland");
        let from_ms = local_midnight_ms(now_ms, &tz);
        assert_eq!(from_ms, at("2026-12-06T11:00:00Z"));
        let calls = vec![
            call("yesterday", "ann", "2026-12-06T10:30:00Z", 120_000),
            call("today", "ann", "2026-12-06T23:40:00Z", 300_000),
            call("bobs", "bob", "2026-12-06T23:00:00Z", 900_000),
        ];
        let intervals = vec![
            interval(
                "ann",
                "not_ready",
                Some("break"),
                "2026-12-06T10:00:00Z",
                "2026-12-06T12:00:00Z",
            ),
            interval(
                "ann",
                "not_ready",
                Some("lunch"),
                "2026-12-06T23:50:00Z",
                "2026-12-07T00:10:00Z",
            ),
            interval(
                "bob",
                "not_ready",
                Some("break"),
                "2026-12-06T12:00:00Z",
                "2026-12-06T18:00:00Z",
            ),
        ];
        let settings = ReportSettings::default();
        let day = agent_since(&calls, &intervals, "ann", from_ms, now_ms, &settings);
        assert_eq!(day.start, "2026-12-06T11:00:00Z");
        assert_eq!((day.offered, day.answered), (1, 1), "{day:?}");
        assert_eq!((day.talk_ms, day.wrap_up_ms), (300_000, 60_000));
        assert_eq!(day.aht_ms, Some(360_000));
        assert_eq!(day.not_ready_total_ms, 3_600_000 + 1_200_000);
        assert_eq!(day.not_ready_ms.get("break"), Some(&3_600_000));
        assert_eq!(day.not_ready_ms.get("lunch"), Some(&1_200_000));

        let utc_from = now_ms - now_ms % DAY_MS;
        let utc = agent_since(&calls, &intervals, "ann", utc_from, now_ms, &settings);
        assert_eq!((utc.answered, utc.not_ready_total_ms), (0, 600_000));
    }
}
