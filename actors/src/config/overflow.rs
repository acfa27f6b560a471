//! `[queues.routing.overflow]`: where a call goes when it leaves its queue
//! at the max wait (or the escalation step `overflow`) before the queue's
//! `final_destination`: other queues or spare external numbers, each rule
//! with a cap on the calls it has out at once and the hours it may be used
//! in. Serde structs, the parsing of their times, and [`validate`], which
//! names the key path of a problem
//! (`queues[0].routing.overflow.rules[1].hours[0].to: ...`). The rules'
//! use at run time is [`crate::queue::overflow_rules`].

use serde::{Deserialize, Serialize};

/// Most overflow rules per queue: a longer list is a typo or a dial plan.
pub const OVERFLOW_RULES_MAX: usize = 32;
/// Longest accepted `busy_ms` and `stay_ms` (a day).
pub const OVERFLOW_MS_MAX: u64 = 86_400_000;
/// How long a call sent to an external number holds its rule's slot,
/// unless the rule says (`busy_ms`): edgecc hands the caller to the PBX's
/// dial plan and does not see that call end.
pub const EXTERNAL_BUSY_MS_DEFAULT: u64 = 300_000;
/// Largest accepted `max_calls`.
pub const OVERFLOW_MAX_CALLS_LIMIT: u32 = 10_000;
/// Largest accepted UTC offset, in minutes (UTC+14:00, Kiribati).
pub const UTC_OFFSET_MINUTES_MAX: i32 = 14 * 60;

/// `[queues.routing.overflow]`: the overflow rules of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverflowConfig {
    /// Tried in order when a call leaves at the max wait: the first rule
    /// within its hours and under its cap takes the call.
    pub rules: Vec<OverflowRule>,
    /// When no rule takes a call that waited out its max wait, it stays in
    /// line this long more (agents may still take it; the rules are tried
    /// again every [`crate::queue::overflow_rules::RETRY_MS`]) before the
    /// queue's `final_destination`. 0: the final destination at once.
    pub stay_ms: u64,
    /// The offset from UTC the rules' hours are written in (`+01:00`,
    /// `-05:00`); default UTC. edgecc reads no time-zone database: at a
    /// daylight-saving switch, change it and reload.
    pub utc_offset: Option<String>,
}

/// One overflow target with its cap and hours: exactly one of `queue` and
/// `number`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverflowRule {
    /// Move the call to this queue, keeping its place time (when it first
    /// took its place in line).
    pub queue: Option<String>,
    /// Send the caller to this external number (a spare phone) through the
    /// PBX; the call ends there for edgecc (terminal `overflowed`).
    pub number: Option<String>,
    /// Most calls this target holds from overflow rules at once (queue: the
    /// calls moved there and not ended yet; number: the calls sent within
    /// the last `busy_ms`). None: no cap.
    pub max_calls: Option<u32>,
    /// For a number: how long a sent call counts against `max_calls`
    /// (default [`EXTERNAL_BUSY_MS_DEFAULT`]).
    pub busy_ms: Option<u64>,
    /// When the rule may be used; none: always.
    pub hours: Vec<OverflowHours>,
}

/// One range of hours on some days of the week, in the overflow's
/// `utc_offset`: `from` inclusive, `to` exclusive, both `HH:MM` (`to` may
/// be `24:00`). A range past midnight is written as two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowHours {
    /// The days it applies on; none: every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Start of the range (`08:00`).
    pub from: String,
    /// End of the range (`18:00`, `24:00`).
    pub to: String,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday first, as ISO 8601 counts.
    const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
}

/// Minutes since midnight of `HH:MM` (00:00..=24:00), if it is one.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Minutes east of UTC of `+HH:MM` / `-HH:MM` (or `Z`), if it is one within
/// ±14:00.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    if s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let minutes = i32::try_from(parse_hhmm(rest)?).ok()?;
    (minutes <= UTC_OFFSET_MINUTES_MAX).then_some(sign * minutes)
}

/// The day of the week and the minute of the day at wall-clock `now_ms`
/// (Unix ms) shifted by `offset_min` minutes.
pub fn local_day_and_minute(now_ms: u64, offset_min: i32) -> (Weekday, u32) {
    let local_min = i64::try_from(now_ms / 60_000).unwrap_or(i64::MAX) + i64::from(offset_min);
    let days = local_min.div_euclid(24 * 60);
    let minute = local_min.rem_euclid(24 * 60) as u32;
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = Weekday::ALL[(days + 3).rem_euclid(7) as usize];
    (weekday, minute)
}

impl OverflowHours {
    /// Whether `day` at `minute` falls in this range (a range that does
    /// not parse is never open; [`validate`] refuses it).
    pub fn contains(&self, day: Weekday, minute: u32) -> bool {
        let (Some(from), Some(to)) = (parse_hhmm(&self.from), parse_hhmm(&self.to)) else {
            return false;
        };
        (self.days.is_empty() || self.days.contains(&day)) && from <= minute && minute < to
    }
}

impl OverflowConfig {
    /// Minutes east of UTC the hours are written in.
    pub fn offset_minutes(&self) -> i32 {
        self.utc_offset
            .as_deref()
            .and_then(parse_utc_offset)
            .unwrap_or(0)
    }
}

impl OverflowRule {
    /// Whether the rule may be used at wall-clock `now_ms`.
    pub fn open_at(&self, now_ms: u64, offset_min: i32) -> bool {
        if self.hours.is_empty() {
            return true;
        }
        let (day, minute) = local_day_and_minute(now_ms, offset_min);
        self.hours.iter().any(|h| h.contains(day, minute))
    }
}

/// Checks queue `own`'s overflow under key path `p` (`queues[0]`), with
/// `known_queue` telling the queue ids that exist, calling `err` for every
/// problem.
pub fn validate(
    p: &str,
    own: &str,
    o: &OverflowConfig,
    known_queue: impl Fn(&str) -> bool,
    err: &mut impl FnMut(String, String),
) {
    let p = format!("{p}.routing.overflow");
    if o.rules.len() > OVERFLOW_RULES_MAX {
        err(
            format!("{p}.rules"),
            format!("at most {OVERFLOW_RULES_MAX} rules"),
        );
    }
    if o.stay_ms > OVERFLOW_MS_MAX {
        err(
            format!("{p}.stay_ms"),
            format!("must be at most {OVERFLOW_MS_MAX}"),
        );
    }
    if let Some(off) = &o.utc_offset {
        if parse_utc_offset(off).is_none() {
            err(
                format!("{p}.utc_offset"),
                format!("{off:?} is not an offset like \"+01:00\" or \"-05:30\" (within 14:00)"),
            );
        }
    }
    for (i, r) in o.rules.iter().enumerate() {
        let rp = format!("{p}.rules[{i}]");
        match (&r.queue, &r.number) {
            (Some(q), None) => {
                if q == own {
                    err(
                        format!("{rp}.queue"),
                        "a queue cannot overflow to itself".into(),
                    );
                } else if !known_queue(q) {
                    err(format!("{rp}.queue"), format!("unknown queue {q:?}"));
                }
                if r.busy_ms.is_some() {
                    err(
                        format!("{rp}.busy_ms"),
                        "only for a number (a queue's calls count until they end)".into(),
                    );
                }
            }
            (None, Some(n)) => {
                if n.is_empty() {
                    err(format!("{rp}.number"), "must be non-empty".into());
                }
                if r.busy_ms.is_some_and(|b| b == 0 || b > OVERFLOW_MS_MAX) {
                    err(
                        format!("{rp}.busy_ms"),
                        format!("must be in 1..={OVERFLOW_MS_MAX}"),
                    );
                }
            }
            _ => err(rp.clone(), "must set exactly one of queue, number".into()),
        }
        if r.max_calls
            .is_some_and(|m| m == 0 || m > OVERFLOW_MAX_CALLS_LIMIT)
        {
            err(
                format!("{rp}.max_calls"),
                format!(
                    "must be in 1..={OVERFLOW_MAX_CALLS_LIMIT} (leave it out for no cap; remove the rule to stop it)"
                ),
            );
        }
        for (j, h) in r.hours.iter().enumerate() {
            let hp = format!("{rp}.hours[{j}]");
            let from = parse_hhmm(&h.from).filter(|m| *m < 24 * 60);
            let to = parse_hhmm(&h.to);
            if from.is_none() {
                err(
                    format!("{hp}.from"),
                    format!("{:?} is not a time HH:MM in 00:00..=23:59", h.from),
                );
            }
            match (from, to) {
                (_, None) => err(
                    format!("{hp}.to"),
                    format!("{:?} is not a time HH:MM in 00:00..=24:00", h.to),
                ),
                (Some(f), Some(t)) if t <= f => err(
                    format!("{hp}.to"),
                    format!(
                        "{:?} is not after from {:?} (write a range past midnight as two)",
                        h.to, h.from
                    ),
                ),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-14T22:13:20Z, a Tuesday.
    const TUE_22_13_UTC: u64 = 1_700_000_000_000;

    fn hours(days: &[Weekday], from: &str, to: &str) -> OverflowHours {
        OverflowHours {
            days: days.to_vec(),
            from: from.into(),
            to: to.into(),
        }
    }

    /// The day and minute follow the offset across midnight both ways.
    #[test]
    fn local_time_follows_the_offset() {
        assert_eq!(
            local_day_and_minute(TUE_22_13_UTC, 0),
            (Weekday::Tue, 22 * 60 + 13)
        );
        assert_eq!(local_day_and_minute(TUE_22_13_UTC, 120), (Weekday::Wed, 13));
        assert_eq!(
            local_day_and_minute(TUE_22_13_UTC, -23 * 60),
            (Weekday::Mon, 23 * 60 + 13)
        );
        assert_eq!(local_day_and_minute(0, 0), (Weekday::Thu, 0));
        assert_eq!(parse_utc_offset("+05:30"), Some(330));
        assert_eq!(parse_utc_offset("-05:00"), Some(-300));
        assert_eq!(parse_utc_offset("+15:00"), None);
        assert_eq!(parse_utc_offset("05:00"), None);
        assert_eq!(parse_hhmm("24:00"), Some(1440));
        assert_eq!(parse_hhmm("24:01"), None);
        assert_eq!(parse_hhmm("8:00"), None);
    }

    /// A rule is open within its hours on its days only; `to` is
    /// exclusive; no hours: always open.
    #[test]
    fn rules_open_within_their_hours() {
        let mut r = OverflowRule {
            number: Some("100".into()),
            ..OverflowRule::default()
        };
        assert!(r.open_at(TUE_22_13_UTC, 0));
        r.hours = vec![hours(&[Weekday::Tue], "22:00", "22:13")];
        assert!(!r.open_at(TUE_22_13_UTC, 0), "to is exclusive");
        r.hours = vec![hours(&[Weekday::Tue], "22:00", "24:00")];
        assert!(r.open_at(TUE_22_13_UTC, 0));
        assert!(!r.open_at(TUE_22_13_UTC, 120), "Wednesday 00:13 at +02:00");
        r.hours.push(hours(&[], "00:00", "06:00"));
        assert!(r.open_at(TUE_22_13_UTC, 120));
    }

    /// Bad ranges, offsets, targets and caps are refused with their key.
    #[test]
    fn bad_keys_are_named() {
        let o = OverflowConfig {
            rules: vec![
                OverflowRule {
                    queue: Some("spare".into()),
                    max_calls: Some(0),
                    hours: vec![hours(&[], "18:00", "08:00"), hours(&[], "25:00", "26:00")],
                    ..OverflowRule::default()
                },
                OverflowRule::default(),
                OverflowRule {
                    queue: Some("q".into()),
                    ..OverflowRule::default()
                },
                OverflowRule {
                    number: Some("+1555".into()),
                    busy_ms: Some(0),
                    ..OverflowRule::default()
                },
            ],
            stay_ms: 0,
            utc_offset: Some("CET".into()),
        };
        let mut out = Vec::new();
        validate("queues[0]", "q", &o, |q| q == "spare", &mut |k, m| {
            out.push(format!("{k}: {m}"))
        });
        let p = "queues[0].routing.overflow";
        for want in [
            format!("{p}.utc_offset: \"CET\""),
            format!("{p}.rules[0].max_calls: must be in 1..="),
            format!("{p}.rules[0].hours[0].to: \"08:00\" is not after from \"18:00\""),
            format!("{p}.rules[0].hours[1].from: \"25:00\""),
            format!("{p}.rules[0].hours[1].to: \"26:00\""),
            format!("{p}.rules[1]: must set exactly one of queue, number"),
            format!("{p}.rules[2].queue: a queue cannot overflow to itself"),
            format!("{p}.rules[3].busy_ms: must be in 1..="),
        ] {
            assert!(
                out.iter().any(|m| m.starts_with(&want)),
                "{want} in {out:#?}"
            );
        }
        assert_eq!(out.len(), 8, "{out:#?}");
    }
}
