//! [`SmallKey`]: the byte strings that key a query's state (a group and its window, a table
//! row's position), inline when short.
//!
//! A stateful query looks a key up for every record it aggregates and every result it keeps
//! for pull queries. With `Vec<u8>` keys each lookup followed a pointer to compare the bytes
//! (a cache miss of its own once the state outgrows the cache) and each new key was an
//! allocation; most keys (a few grouping values and a window start) fit in 38 bytes.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// The longest key kept inline: with its length and the variant's tag, 40 bytes.
const INLINE: usize = 38;

/// A byte string, inline up to 38 bytes, on the heap beyond. It hashes, compares and orders
/// as its bytes (`[u8]`), so a map keyed by it is looked up with a borrowed `&[u8]`.
#[derive(Clone)]
pub enum SmallKey {
    Inline { length: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl SmallKey {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallKey::Inline { length, bytes } => &bytes[..*length as usize],
            SmallKey::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for SmallKey {
    fn from(slice: &[u8]) -> Self {
        if slice.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..slice.len()].copy_from_slice(slice);
            SmallKey::Inline {
                length: slice.len() as u8,
                bytes,
            }
        } else {
            SmallKey::Heap(slice.into())
        }
    }
}

impl Deref for SmallKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for SmallKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

// As `[u8]` hashes, so that `Borrow<[u8]>` lookups find the key.
impl Hash for SmallKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for SmallKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SmallKey {}

impl PartialOrd for SmallKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl std::fmt::Debug for SmallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    #[test]
    fn short_and_long_keys_are_found_by_their_bytes_and_ordered_as_bytes() {
        let short: Vec<u8> = b"car-7".to_vec();
        let exactly_inline = vec![7u8; INLINE];
        let long = vec![9u8; INLINE + 1];
        assert!(matches!(
            SmallKey::from(exactly_inline.as_slice()),
            SmallKey::Inline { .. }
        ));
        assert!(matches!(SmallKey::from(long.as_slice()), SmallKey::Heap(_)));
        let mut map: FxHashMap<SmallKey, usize> = FxHashMap::default();
        for (index, key) in [&short, &exactly_inline, &long].into_iter().enumerate() {
            map.insert(SmallKey::from(key.as_slice()), index);
        }
        assert_eq!(map.get(short.as_slice()), Some(&0));
        assert_eq!(map.get(exactly_inline.as_slice()), Some(&1));
        assert_eq!(map.get(long.as_slice()), Some(&2));
        assert_eq!(map.get(&b"car-"[..]), None);
        // An inline key with trailing zeros is not a shorter one.
        assert_ne!(SmallKey::from(&b"a\0"[..]), SmallKey::from(&b"a"[..]));
        let mut keys: Vec<SmallKey> = [&long[..], &short[..], &b""[..], &exactly_inline[..]]
            .into_iter()
            .map(SmallKey::from)
            .collect();
        keys.sort();
        let mut expected = vec![b"".to_vec(), short, exactly_inline, long];
        expected.sort();
        assert_eq!(
            keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>(),
            expected
        );
    }
}
