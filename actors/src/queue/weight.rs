//! Queue weights, pure: an agent serving several queues with different
//! weights (`queues[].routing.weight`) answers the reservation requests
//! that reach it together in weight order, so the heavier queue's call
//! wins the agent and the lighter one hears no.
//!
//! The agent's actor gathers the requests that arrive while it is Ready
//! until its next timer tick (at most a millisecond, nothing with the
//! paused clock: it fires once every ready task ran, so every queue woken
//! by the same push has asked), then answers them heaviest first, the
//! earliest first among equals. An agent whose queues weigh the same
//! answers each request at once, as before.

/// Requests gathered for one decision, each with its queue's weight.
#[derive(Debug)]
pub struct WeighedAsks<T> {
    /// The requests in arrival order, with their queue's weight.
    asks: Vec<(u32, T)>,
}

impl<T> Default for WeighedAsks<T> {
    fn default() -> Self {
        Self { asks: Vec::new() }
    }
}

impl<T> WeighedAsks<T> {
    /// Adds a request; true when it is the first of a round (the caller
    /// arms the decision).
    pub fn push(&mut self, weight: u32, ask: T) -> bool {
        self.asks.push((weight, ask));
        self.asks.len() == 1
    }

    /// The round's requests, heaviest queue first, then arrival.
    pub fn take_in_order(&mut self) -> Vec<T> {
        let mut asks = std::mem::take(&mut self.asks);
        // A stable sort keeps arrival order among equal weights.
        asks.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
        asks.into_iter().map(|(_, a)| a).collect()
    }
}

/// Whether an agent in queues of `weights` must weigh its requests.
pub fn weights_differ(weights: impl IntoIterator<Item = u32>) -> bool {
    let mut it = weights.into_iter();
    let Some(first) = it.next() else {
        return false;
    };
    it.any(|w| w != first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Heaviest first; equal weights keep their arrival order.
    #[test]
    fn heaviest_first_then_arrival() {
        let mut asks = WeighedAsks::default();
        assert!(asks.push(1, "b1"));
        assert!(!asks.push(5, "a"));
        assert!(!asks.push(1, "b2"));
        assert_eq!(asks.take_in_order(), vec!["a", "b1", "b2"]);
        assert!(asks.push(0, "next round"));
        assert!(weights_differ([1, 1, 2]));
        assert!(!weights_differ([3, 3]));
        assert!(!weights_differ([]));
    }
}
