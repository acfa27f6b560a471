//! ARI wire types: the channel, bridge and playback objects and the events
//! of the `/ari/events` WebSocket, as a real Asterisk 22 sends them (see
//! `tests/fixtures/ari/*.jsonl`).
//!
//! Parsing is lenient where Asterisk is loose and strict nowhere it matters:
//! every field edgecc does not need is optional or ignored, key order does not
//! matter, unknown event types parse as [`AriEvent::Other`], and timestamps
//! in Asterisk's own form (`2026-11-21T16:35:19.394+0000`, no colon in the
//! offset) are accepted next to RFC 3339. A frame that is not an event at all
//! is an [`EventError`], never a panic.

use jiff::fmt::strtime;
use jiff::tz::Offset;
use jiff::{RoundMode, TimestampRound, Unit};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Longest text frame accepted from the WebSocket; an ARI event is a few
/// kilobytes, so anything this large is garbage (or an attack) and skipped.
pub const EVENT_FRAME_BYTES_MAX: usize = 256 * 1024;

/// Caller or connected-line identity of a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CallerId {
    /// Display name.
    pub name: String,
    /// Number (the ANI of an inbound caller).
    pub number: String,
}

/// Where a channel is in the dialplan (`app_name` is `Stasis` while the
/// channel is in an ARI application).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Dialplan {
    /// Context.
    pub context: String,
    /// Extension.
    pub exten: String,
    /// Priority.
    pub priority: i64,
    /// Application running now (`Stasis`, `AppDial2`, ...).
    pub app_name: String,
    /// Its arguments (`edgecc,inbound,5000`).
    pub app_data: String,
}

/// An ARI channel object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Channel {
    /// The unique id (edgecc chooses it for the channels it originates).
    pub id: String,
    /// Asterisk's name (`PJSIP/2001-00000000`, `Local/s@inbound-00000000;2`).
    pub name: String,
    /// `Down`, `Ring`, `Ringing`, `Up`, `Busy`, ...
    pub state: String,
    /// Caller identity.
    pub caller: CallerId,
    /// Connected-line identity.
    pub connected: CallerId,
    /// Dialplan location.
    pub dialplan: Dialplan,
    /// Creation time, as Asterisk writes it.
    pub creationtime: String,
    /// Variables listed in `ari.conf` `channelvars`, when configured.
    pub channelvars: Option<BTreeMap<String, serde_json::Value>>,
}

impl Channel {
    /// Whether the channel is in the Stasis application `app` now.
    pub fn in_app(&self, app: &str) -> bool {
        self.dialplan.app_name == "Stasis"
            && self
                .dialplan
                .app_data
                .split(',')
                .next()
                .is_some_and(|a| a == app)
    }
}

/// An ARI bridge object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Bridge {
    /// The id (edgecc chooses it).
    pub id: String,
    /// `mixing`, `holding`.
    pub bridge_type: String,
    /// Channels in the bridge (after the change, in Entered/Left events).
    pub channels: Vec<String>,
}

/// An ARI playback object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Playback {
    /// The playback id (edgecc chooses it).
    pub id: String,
    /// `channel:<id>` or `bridge:<id>`.
    pub target_uri: String,
    /// `queued`, `playing`, `done`, `failed`.
    pub state: String,
}

/// One event from the ARI WebSocket, reduced to what edgecc uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum AriEvent {
    /// A channel entered the application (inbound through `Stasis()`, or
    /// an originated channel once the far end answered).
    StasisStart {
        /// `Stasis()` / `appArgs` arguments, split on commas.
        #[serde(default)]
        args: Vec<String>,
        /// The channel.
        channel: Channel,
    },
    /// A channel left the application (hung up, or `continue`d).
    StasisEnd {
        /// The channel.
        channel: Channel,
    },
    /// Progress of an originate (`peer` is the dialed channel).
    Dial {
        /// `""`, `RINGING`, `ANSWER`, `BUSY`, `NOANSWER`, `CONGESTION`,
        /// `CHANUNAVAIL`, `CANCEL`, ...
        #[serde(default)]
        dialstatus: String,
        /// The dialed channel.
        peer: Channel,
    },
    /// A channel's state changed (`Ringing`, `Up`, ...).
    ChannelStateChange {
        /// The channel, with its new state.
        channel: Channel,
    },
    /// Someone asked for a channel to hang up (`soft` when the app did).
    ChannelHangupRequest {
        /// Q.850 cause (32 with `soft` for an app DELETE: not a real cause).
        #[serde(default)]
        cause: Option<i64>,
        /// True when the request came from the application.
        #[serde(default)]
        soft: Option<bool>,
        /// The channel.
        channel: Channel,
    },
    /// A channel is gone (only for channels the app still subscribes to).
    ChannelDestroyed {
        /// Q.850 cause.
        #[serde(default)]
        cause: Option<i64>,
        /// Its text.
        #[serde(default)]
        cause_txt: String,
        /// The channel.
        channel: Channel,
    },
    /// A channel joined a bridge; `bridge.channels` is the membership after.
    ChannelEnteredBridge {
        /// The bridge.
        bridge: Bridge,
        /// The channel.
        channel: Channel,
    },
    /// A channel left a bridge; `bridge.channels` is the membership after.
    ChannelLeftBridge {
        /// The bridge.
        bridge: Bridge,
        /// The channel.
        channel: Channel,
    },
    /// A bridge was destroyed.
    BridgeDestroyed {
        /// The bridge.
        bridge: Bridge,
    },
    /// A DTMF digit ended on a channel.
    ChannelDtmfReceived {
        /// The digit.
        #[serde(default)]
        digit: String,
        /// The channel.
        channel: Channel,
    },
    /// A playback started.
    PlaybackStarted {
        /// The playback.
        playback: Playback,
    },
    /// A playback finished (or failed).
    PlaybackFinished {
        /// The playback.
        playback: Playback,
    },
    /// Another WebSocket took over the application: this one gets nothing
    /// more.
    ApplicationReplaced {},
    /// Any other type (`ChannelVarset`, `ChannelDialplan`, endpoint events,
    /// types a newer Asterisk adds): ignored.
    #[serde(other)]
    Other,
}

impl AriEvent {
    /// The event's type name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::StasisStart { .. } => "StasisStart",
            Self::StasisEnd { .. } => "StasisEnd",
            Self::Dial { .. } => "Dial",
            Self::ChannelStateChange { .. } => "ChannelStateChange",
            Self::ChannelHangupRequest { .. } => "ChannelHangupRequest",
            Self::ChannelDestroyed { .. } => "ChannelDestroyed",
            Self::ChannelEnteredBridge { .. } => "ChannelEnteredBridge",
            Self::ChannelLeftBridge { .. } => "ChannelLeftBridge",
            Self::BridgeDestroyed { .. } => "BridgeDestroyed",
            Self::ChannelDtmfReceived { .. } => "ChannelDtmfReceived",
            Self::PlaybackStarted { .. } => "PlaybackStarted",
            Self::PlaybackFinished { .. } => "PlaybackFinished",
            Self::ApplicationReplaced {} => "ApplicationReplaced",
            Self::Other => "Other",
        }
    }
}

/// An event with the envelope fields every ARI event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The event.
    pub event: AriEvent,
    /// `timestamp` in ms since the epoch, when present and parseable.
    pub timestamp_ms: Option<i64>,
    /// The `type` field as sent (also for [`AriEvent::Other`]).
    pub type_name: String,
}

/// Why a frame could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Larger than [`EVENT_FRAME_BYTES_MAX`].
    #[error("frame of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// Not JSON, not an object, no `type`, or a known type with a broken
    /// shape (a `channel` that is not an object, ...).
    #[error("not an ARI event: {0}")]
    Malformed(String),
}

/// Parses one WebSocket text frame.
pub fn parse_event(text: &str) -> Result<Envelope, EventError> {
    if text.len() > EVENT_FRAME_BYTES_MAX {
        return Err(EventError::TooLarge(text.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| EventError::Malformed(e.to_string()))?;
    let type_name = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| EventError::Malformed("no \"type\" string".into()))?
        .to_owned();
    let timestamp_ms = value
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(parse_timestamp_ms);
    let event = AriEvent::deserialize(&value)
        .map_err(|e| EventError::Malformed(format!("{type_name}: {e}")))?;
    Ok(Envelope {
        event,
        timestamp_ms,
        type_name,
    })
}

/// The forms of an ARI timestamp for jiff's `strptime`: Asterisk's
/// `+0000` offset, RFC 3339's `+00:00`, and `Z` (UTC).
const TIMESTAMP_FORMS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.fz",
];

/// Parses an ARI timestamp to ms since the Unix epoch:
/// `%Y-%m-%dT%H:%M:%S%.3f%z` as Asterisk writes it (`+0000`), and also
/// `+00:00` and `Z` offsets and up to nine fraction digits (the ms the
/// instant falls in; a leap second `:60` reads as `:59`, as jiff has no
/// leap seconds). `None` for anything else (invalid dates such as
/// `2026-02-30`, offsets of a day or more, or not whole minutes, included).
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    // Fixed-width fields, as Asterisk writes them: jiff's strptime would
    // also take unpadded numbers, blanks before them and signed years.
    const START: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    let fixed_width = s.len() >= START.len()
        && s.bytes().zip(START).all(|(c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        });
    if !fixed_width {
        return None;
    }
    let tm = TIMESTAMP_FORMS
        .iter()
        .find_map(|form| strtime::parse(form, s).ok())?;
    let offset = tm.offset().unwrap_or(Offset::UTC);
    if offset.seconds() % 60 != 0 || offset.seconds().abs() >= 86_400 {
        return None;
    }
    let floor_ms = TimestampRound::new()
        .smallest(Unit::Millisecond)
        .mode(RoundMode::Floor);
    let at = offset.to_timestamp(tm.to_datetime().ok()?).ok()?;
    let at = at.round(floor_ms).ok()?;
    Some(at.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asterisk's timestamps (no colon in the offset) parse, as do RFC 3339
    /// ones; the same instant written both ways gives the same ms.
    #[test]
    fn timestamps_in_asterisk_form_parse() {
        let a = parse_timestamp_ms("2026-11-21T16:35:19.394+0000").unwrap();
        let b = parse_timestamp_ms("2026-11-21T16:35:19.394Z").unwrap();
        let c = parse_timestamp_ms("2026-11-21T17:35:19.394+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        // 2026-11-21T16:35:19Z is 1_795_278_919 s after the epoch.
        assert_eq!(a, 1_795_278_919_394);
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00.000+0000"), Some(0));
        for bad in [
            "",
            "yesterday",
            "2026-13-21T16:35:19.394+0000",
            "2026-11-21T16:35:19.394+99",
            "2026-11-21T16:35:19.+0000",
            "2026-11-21 16:35:19.394+0000",
            "２０２６-11-21T16:35:19.394+0000",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
    }

    /// Goal: the calendar edges parse to the right instant and impossible
    /// dates and offsets are refused: leap days only in leap years, year
    /// ends, negative offsets, fractions floored to the ms, the epoch.
    #[test]
    fn timestamps_at_calendar_edges() {
        let ms = parse_timestamp_ms;
        // 2024-02-29T00:00:00Z is 1_709_164_800 s after the epoch.
        assert_eq!(ms("2024-02-29T00:00:00.000+0000"), Some(1_709_164_800_000));
        assert_eq!(ms("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        // A year's last ms and the next year's first, written from UTC-5.
        assert_eq!(ms("2025-12-31T23:59:59.999Z"), Some(1_767_225_599_999));
        assert_eq!(ms("2025-12-31T19:00:00.000-0500"), Some(1_767_225_600_000));
        assert_eq!(ms("2025-12-31T19:00:00-05:00"), Some(1_767_225_600_000));
        assert_eq!(ms("2026-01-01T05:30:00+05:30"), Some(1_767_225_600_000));
        // Fractions: none, one digit, nine; the ms the instant falls in.
        assert_eq!(ms("1970-01-01T00:00:01Z"), Some(1_000));
        assert_eq!(ms("1970-01-01T00:00:01.5Z"), Some(1_500));
        assert_eq!(ms("1970-01-01T00:00:01.999999999Z"), Some(1_999));
        assert_eq!(ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(ms("1970-01-01T00:00:00.000z"), Some(0));
        for bad in [
            "2026-02-29T00:00:00.000+0000",
            "2026-02-30T00:00:00.000+0000",
            "2026-04-31T00:00:00.000+0000",
            "2026-00-10T00:00:00.000+0000",
            "2026-11-21T24:00:00.000+0000",
            "2026-11-21T16:60:00.000+0000",
            "2026-11-21T16:35:19.394+2400",
            "2026-11-21T16:35:19.394+0060",
            "2026-11-21T16:35:19.394+000030",
            "2026-11-21T16:35:19.394 +0000",
            "2026-11-21T16:35:19.394",
            "2026-11-21t16:35:19.394Z",
            "2026-1-21T16:35:19.394+0000",
            "+2026-11-21T16:35:19.394+0000",
            "2026-11-21T16:35:19.394+0000[Europe/Berlin]",
            "2026-11-21T16:35:19.394+0000 ",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }

    /// Broken frames are errors, unknown types are `Other`, and a missing
    /// optional field is fine.
    #[test]
    fn frames_parse_or_fail_cleanly() {
        assert!(matches!(parse_event("{"), Err(EventError::Malformed(_))));
        assert!(matches!(parse_event("[]"), Err(EventError::Malformed(_))));
        assert!(matches!(
            parse_event("{\"type\":7}"),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            parse_event("{\"type\":\"StasisStart\",\"channel\":5}"),
            Err(EventError::Malformed(_))
        ));
        let big = format!(
            "{{\"type\":\"X\",\"pad\":\"{}\"}}",
            "a".repeat(EVENT_FRAME_BYTES_MAX)
        );
        assert!(matches!(parse_event(&big), Err(EventError::TooLarge(_))));
        let e = parse_event("{\"type\":\"ChannelVarset\",\"variable\":\"X\"}").unwrap();
        assert_eq!(e.event, AriEvent::Other);
        assert_eq!(e.type_name, "ChannelVarset");
        let e = parse_event("{\"type\":\"StasisStart\",\"channel\":{\"id\":\"c1\"}}").unwrap();
        match e.event {
            AriEvent::StasisStart { args, channel } => {
                assert!(args.is_empty());
                assert_eq!(channel.id, "c1");
            }
            other => panic!("{other:?}"),
        }
    }

    /// `in_app` reads the dialplan location of a channel in Stasis.
    #[test]
    fn in_app_reads_the_dialplan() {
        let mut c = Channel::default();
        c.dialplan.app_name = "Stasis".into();
        c.dialplan.app_data = "edgecc,inbound,5000".into();
        assert!(c.in_app("edgecc"));
        assert!(!c.in_app("edge"));
        c.dialplan.app_name = "AppDial2".into();
        assert!(!c.in_app("edgecc"));
    }
}
