//! Identifiers of the domain: calls, legs, agents, queues and offer tokens.
//!
//! Ids are small newtypes over `String` (or `u64` for tokens) so a call id is
//! never passed where an agent id is expected.
//!
//! The leg and bridge id format is defined here and nowhere else; the PBX
//! adapters parse ids with these functions:
//!
//! | id | format | minted by |
//! | --- | --- | --- |
//! | caller leg (inbound) | the PBX's own id, without `~` | the PBX; it is the call id |
//! | agent, consult or supervisor leg | `{call}~{token}` | [`LegId::for_offer`] |
//! | customer leg (outbound) | `{call}~c` | [`LegId::customer`] |
//! | main bridge | `b~{call}` | [`BridgeId::main`] |
//! | consult bridge | `k~{call}` | [`BridgeId::consult`] |
//! | snoop bridge of a supervisor leg | `s~{call}~{token}` | [`BridgeId::snoop`] |

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Builds the id from anything string-like.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A call (and its interaction): for inbound calls the PBX's unique id of
    /// the caller leg, for outbound calls an id minted by edgecc.
    CallId
);
string_id!(
    /// An agent, as named in the configuration.
    AgentId
);
string_id!(
    /// A queue, as named in the configuration.
    QueueId
);
string_id!(
    /// One channel (leg) at the PBX. Agent and consult legs are minted by
    /// edgecc as `{call_id}~{token}`, so a retried command is recognisable and
    /// any leg event can be routed to its call without a lookup table.
    LegId
);
string_id!(
    /// A bridge (mixing room) at the PBX, minted by edgecc from the call id.
    BridgeId
);

/// Separator between the call id and the suffix of an edgecc-minted leg id.
pub const LEG_ID_SEPARATOR: char = '~';

impl LegId {
    /// The leg edgecc originates for `token` on `call`.
    pub fn for_offer(call: &CallId, token: OfferToken) -> Self {
        Self(format!("{}{}{}", call.0, LEG_ID_SEPARATOR, token.0))
    }

    /// The customer leg of an outbound call.
    pub fn customer(call: &CallId) -> Self {
        Self(format!("{}{}c", call.0, LEG_ID_SEPARATOR))
    }

    /// The call this leg belongs to: the prefix before `~`, or the whole id
    /// for a caller leg (whose id is the call id).
    pub fn call_id(&self) -> CallId {
        match self.0.split_once(LEG_ID_SEPARATOR) {
            Some((call, _)) => CallId(call.to_owned()),
            None => CallId(self.0.clone()),
        }
    }

    /// The offer token of a leg minted by [`Self::for_offer`]; `None` for a
    /// caller leg, a customer leg or a foreign id.
    pub fn token(&self) -> Option<OfferToken> {
        let (_, suffix) = self.0.split_once(LEG_ID_SEPARATOR)?;
        suffix.parse().ok().map(OfferToken)
    }

    /// Whether edgecc minted this id (every minted id has a `~`; a caller
    /// leg's id, chosen by the PBX, must not).
    pub fn is_minted(&self) -> bool {
        is_minted(&self.0)
    }
}

/// Whether `id` (a leg or bridge id) was minted by edgecc: it contains
/// [`LEG_ID_SEPARATOR`]. An inbound channel whose id contains it cannot be
/// adopted as a call, since its legs would be misrouted.
pub fn is_minted(id: &str) -> bool {
    id.contains(LEG_ID_SEPARATOR)
}

impl BridgeId {
    /// The main bridge of a call.
    pub fn main(call: &CallId) -> Self {
        Self(format!("b{}{}", LEG_ID_SEPARATOR, call.0))
    }

    /// The bridge where the agent talks to a consulted colleague.
    pub fn consult(call: &CallId) -> Self {
        Self(format!("k{}{}", LEG_ID_SEPARATOR, call.0))
    }

    /// The bridge that joins a supervisor's snoop leg `leg` to its spy
    /// channel (monitor and whisper).
    pub fn snoop(leg: &LegId) -> Self {
        Self(format!("s{}{}", LEG_ID_SEPARATOR, leg.0))
    }

    /// The call this bridge belongs to: what follows the one-letter prefix,
    /// read as a leg id (so `s~{call}~{token}` is `call`); a foreign id
    /// without `~` is its own call.
    pub fn call_id(&self) -> CallId {
        match self.0.split_once(LEG_ID_SEPARATOR) {
            Some((_, rest)) => LegId(rest.to_owned()).call_id(),
            None => CallId(self.0.clone()),
        }
    }
}

/// Fencing token of one offer (lease). Minted from a process-wide counter, so
/// a token is never reused: an answer carrying an old token cannot win.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OfferToken(pub u64);

impl fmt::Display for OfferToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Mints fencing tokens. Shared by queues and calls; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct TokenSource {
    /// The last token handed out; shared so every minter sees one sequence.
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TokenSource {
    /// A new source starting at 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// A source whose first token is `last + 1` (a restored system starts
    /// above every token it may have handed out before).
    pub fn starting_after(last: u64) -> Self {
        Self {
            last: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(last)),
        }
    }

    /// The next token, never seen before in this process.
    pub fn mint(&self) -> OfferToken {
        OfferToken(
            self.last
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_add(1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Agent leg ids route back to their call; caller legs are their call.
    #[test]
    fn leg_ids_route_to_calls() {
        let call = CallId::new("1712.7");
        assert_eq!(LegId::for_offer(&call, OfferToken(9)).call_id(), call);
        assert_eq!(LegId::customer(&call).call_id(), call);
        assert_eq!(LegId::new("1712.7").call_id(), call);
        let tokens = TokenSource::new();
        assert_ne!(tokens.mint(), tokens.mint());
    }

    /// Every minted id parses back to its call (and token); foreign ids are
    /// their own call and are not minted.
    #[test]
    fn ids_parse_back() {
        let call = CallId::new("1712.7");
        let leg = LegId::for_offer(&call, OfferToken(3));
        assert_eq!(leg.token(), Some(OfferToken(3)));
        assert!(leg.is_minted());
        assert_eq!(LegId::customer(&call).token(), None);
        assert!(!LegId::new("1712.7").is_minted());
        assert_eq!(LegId::new("1712.7").token(), None);
        for bridge in [
            BridgeId::main(&call),
            BridgeId::consult(&call),
            BridgeId::snoop(&leg),
        ] {
            assert!(is_minted(bridge.as_str()));
            assert_eq!(bridge.call_id(), call, "{bridge}");
        }
        assert_eq!(BridgeId::snoop(&leg).as_str(), "s~1712.7~3");
        assert_eq!(BridgeId::main(&call).as_str(), "b~1712.7");
        assert_eq!(BridgeId::new("foreign").call_id(), CallId::new("foreign"));
    }
}
