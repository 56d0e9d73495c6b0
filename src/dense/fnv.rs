//! FNV-1a hashes: the 128-bit content key of a text under a model, and the 64-bit checksum of the
//! disk cache's header and records.
//!
//! FNV-1a is used because it is tiny, needs no dependency, and is fixed by its definition, so keys
//! written to disk by one build are found by the next. It is not collision resistant against an
//! adversary; the keys only ever come from the host's own turns.

const OFFSET_128: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const PRIME_128: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
const OFFSET_64: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME_64: u64 = 0x0000_0100_0000_01b3;

/// The cache key of `text` embedded by the model `model_id`.
///
/// The model id is length-prefixed, so no (model id, text) pair can run into another.
pub(crate) fn text_key(model_id: &str, text: &str) -> u128 {
    let mut h = OFFSET_128;
    let len = (model_id.len() as u64).to_le_bytes();
    for &b in len.iter().chain(model_id.as_bytes()).chain(text.as_bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME_128);
    }
    h
}

/// Chains 128-bit keys: the key of a sequence extended by an element whose own key is `next`
/// (one multiply per element, so a run of turns is keyed in O(turns) from its turns' text keys).
/// Fixed by its definition, like the keys, since chained keys are written to disk.
pub(crate) fn chain_key(prev: u128, next: u128) -> u128 {
    (prev ^ next).wrapping_mul(PRIME_128).rotate_left(61)
}

/// A running 64-bit FNV-1a checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checksum(u64);

impl Checksum {
    pub(crate) fn new() -> Self {
        Checksum(OFFSET_64)
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(PRIME_64);
        }
    }

    pub(crate) fn value(self) -> u64 {
        self.0
    }
}

/// The 64-bit FNV-1a checksum of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(bytes);
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64_matches_the_published_test_vectors() {
        assert_eq!(checksum(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(checksum(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(checksum(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn text_keys_separate_models_and_texts() {
        let a = text_key("m", "hello");
        assert_eq!(a, text_key("m", "hello"));
        assert_ne!(a, text_key("m", "hellO"));
        assert_ne!(a, text_key("n", "hello"));
        // Without the length prefix these two would hash the same bytes.
        assert_ne!(text_key("ab", "c"), text_key("a", "bc"));
    }
}
