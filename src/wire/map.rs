//! The ordered `map<str, V>` of the wire ([`Headers`](super::Headers) and
//! [`ActorNames`](super::ActorNames)).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::control::ActorName;

/// An ordered `map<str, V>` as the wire carries it.
///
/// Entries keep their wire order, so decoding and re-encoding a frame is the identity. Keys are
/// unique: decoding rejects a duplicate key (as the official codec does), and `insert` replaces
/// an existing value in place.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WireMap<V>(Vec<(String, V)>);

impl<V> WireMap<V> {
    /// An empty map.
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Builds a map from entries in order, without checking for duplicate keys. Encoding a map
    /// with duplicate keys produces a frame the official codec rejects; prefer `insert` or
    /// [`FromIterator`].
    #[must_use]
    pub fn from_entries_unchecked(entries: Vec<(String, V)>) -> Self {
        Self(entries)
    }

    /// The entries in wire order.
    #[must_use]
    pub fn into_entries(self) -> Vec<(String, V)> {
        self.0
    }

    /// Sets `key` to `value`, keeping the position of an existing key.
    fn put(&mut self, key: String, value: V) {
        if let Some(entry) = self.0.iter_mut().find(|(k, _)| *k == key) {
            entry.1 = value;
        } else {
            self.0.push((key, value));
        }
    }

    /// The value of `key`, if present.
    fn value(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl WireMap<String> {
    /// Sets `key` to `value`, keeping the position of an existing key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.put(key.into(), value.into());
    }

    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.value(key).map(String::as_str)
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl WireMap<ActorName> {
    /// Sets `name` to `value`, keeping the position of an existing name.
    pub fn insert(&mut self, name: impl Into<String>, value: ActorName) {
        self.put(name.into(), value);
    }

    /// The entry of `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&ActorName> {
        self.value(name)
    }

    /// Entries in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &ActorName)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<V> Default for WireMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for WireMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<V, K: Into<String>, W: Into<V>> FromIterator<(K, W)> for WireMap<V> {
    fn from_iter<I: IntoIterator<Item = (K, W)>>(iter: I) -> Self {
        let mut m = Self::new();
        for (k, v) in iter {
            m.put(k.into(), v.into());
        }
        m
    }
}

impl<V: Serialize> Serialize for WireMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Headers in entry order; a repeated key is an error (as on the wire).
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for WireMap<String> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = WireMap<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WireMap<String>, A::Error> {
                let mut entries: Vec<(String, String)> = Vec::new();
                let mut keys = alloc::collections::BTreeSet::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if !keys.insert(k.clone()) {
                        return Err(serde::de::Error::custom(alloc::format!(
                            "duplicate header {k:?}"
                        )));
                    }
                    entries.push((k, v));
                }
                Ok(WireMap(entries))
            }
        }
        d.deserialize_map(Visitor)
    }
}
