//! [`Shared`]: an immutable part of an actor's state held through an
//! [`Arc`], so the copy of that state persisted at every step
//! ([`crate::durable`]) shares it instead of copying it. Serialized as the
//! value itself: a record written with a `Shared<T>` field reads back into
//! a plain `T` field and the other way round.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A value that does not change once made, cheap to clone (a reference
/// count), sent with the state records to the store's threads.
#[derive(PartialEq, Eq)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a `Shared` field is written and read as its value, so records
    /// written before it (a plain field) still read, and a clone shares
    /// rather than copies. Method: round-trip through JSON both ways;
    /// compare the pointers of a clone.
    #[test]
    fn serialized_as_the_value_and_cloned_by_reference() {
        let shared = Shared::new(vec!["a1".to_string(), "a2".to_string()]);
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(json, r#"["a1","a2"]"#);
        let plain: Vec<String> = serde_json::from_str(&json).unwrap();
        let back: Shared<Vec<String>> =
            serde_json::from_str(&serde_json::to_string(&plain).unwrap()).unwrap();
        assert_eq!(back, shared);
        let copy = shared.clone();
        assert!(std::ptr::eq(&*copy, &*shared), "a clone shares the value");
    }
}
