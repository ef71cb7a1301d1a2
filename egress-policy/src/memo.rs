//! A small memo with a fixed capacity, for answers that are cheap to keep and costly to
//! recompute (a host's placement, a text already found free of secrets).
//!
//! Eviction rule: when an insert would bring a *new* key into a full memo, the memo forgets
//! everything first and starts over. The memo is meant for the few keys a session repeats;
//! starting over is O(1) bookkeeping, never lets the memo grow past its capacity, and the keys
//! that matter come back on their next use. Replacing the value of a key already held never
//! evicts.
//!
//! The memo holds no lock and no clock: callers that want one per thread keep it in a
//! `thread_local!` `RefCell`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// A map from `K` to `V` that never holds more than its capacity; see the module
/// documentation for the eviction rule. With `V = ()` it is a bounded set.
#[derive(Debug, Clone)]
pub struct BoundedMemo<K, V> {
    entries: HashMap<K, V>,
    capacity: usize,
}

impl<K: Eq + Hash, V> BoundedMemo<K, V> {
    /// An empty memo that holds at most `capacity` entries (a capacity of 0 remembers nothing).
    pub fn new(capacity: usize) -> Self {
        BoundedMemo {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The value remembered for `key`, if any.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.get(key)
    }

    /// Whether a value is remembered for `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.contains_key(key)
    }

    /// Remember `value` for `key`. A new key arriving in a full memo first empties it.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.clear();
        }
        self.entries.insert(key, value);
    }

    /// How many entries the memo holds now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the memo holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most entries the memo ever holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_return_the_stored_value_and_misses_nothing() {
        let mut memo = BoundedMemo::new(4);
        memo.insert("api.eu.mistral.ai".to_string(), Some(7));
        memo.insert("unknown.example".to_string(), None);
        assert_eq!(memo.get("api.eu.mistral.ai"), Some(&Some(7)));
        assert_eq!(memo.get("unknown.example"), Some(&None));
        assert_eq!(memo.get("api.mistral.ai"), None);
        assert!(memo.contains_key("unknown.example"));
        assert!(!memo.contains_key("other.example"));
        assert_eq!(memo.len(), 2);
    }

    #[test]
    fn the_bound_is_never_exceeded() {
        for capacity in [1, 2, 3, 16] {
            let mut memo = BoundedMemo::new(capacity);
            for i in 0..(capacity * 5 + 1) {
                memo.insert(i, i * 10);
                assert!(memo.len() <= capacity, "capacity {capacity}, after {i}");
                assert_eq!(memo.get(&i), Some(&(i * 10)), "the last insert is kept");
            }
        }
    }

    #[test]
    fn a_new_key_in_a_full_memo_starts_it_over() {
        let mut memo = BoundedMemo::new(3);
        for i in 0..3 {
            memo.insert(i, ());
        }
        assert_eq!(memo.len(), 3);
        memo.insert(3, ());
        assert_eq!(memo.len(), 1);
        assert!(memo.contains_key(&3));
        assert!(
            (0..3).all(|i| !memo.contains_key(&i)),
            "older keys are forgotten"
        );
    }

    #[test]
    fn replacing_a_held_key_in_a_full_memo_evicts_nothing() {
        let mut memo = BoundedMemo::new(2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        memo.insert("a", 3);
        assert_eq!(memo.len(), 2);
        assert_eq!(memo.get("a"), Some(&3));
        assert_eq!(memo.get("b"), Some(&2));
    }

    #[test]
    fn a_zero_capacity_memo_remembers_nothing() {
        let mut memo = BoundedMemo::new(0);
        memo.insert("a", 1);
        assert!(memo.is_empty());
        assert_eq!(memo.get("a"), None);
        assert_eq!(memo.capacity(), 0);
    }

    #[test]
    fn keys_that_differ_never_collide() {
        // Keys that differ only in case, a trailing dot, a prefix or a suffix, and keys built
        // to look alike, each keep their own value.
        let keys = [
            "api.eu.mistral.ai",
            "API.EU.MISTRAL.AI",
            "api.eu.mistral.ai.",
            "api.eu.mistral.a",
            "xapi.eu.mistral.ai",
            "",
            "\u{0}",
            "api.eu.mistral.ai\u{0}",
        ];
        let mut memo = BoundedMemo::new(keys.len());
        for (i, key) in keys.iter().enumerate() {
            memo.insert(key.to_string(), i);
        }
        assert_eq!(memo.len(), keys.len());
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(memo.get(*key), Some(&i), "{key:?}");
        }
        let mut pairs = BoundedMemo::new(4);
        pairs.insert((false, "text".to_string()), 'a');
        pairs.insert((true, "text".to_string()), 'b');
        assert_eq!(pairs.get(&(false, "text".to_string())), Some(&'a'));
        assert_eq!(pairs.get(&(true, "text".to_string())), Some(&'b'));
    }
}
