//! 128-bit fingerprints of customer ids, for the duplicate check and suppressions.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A 128-bit fingerprint of a customer id, so a million ids are a million 16-byte
/// keys rather than heap strings. Two lanes of folded multiplies (the wyhash
/// construction) with unrelated constants: fast on short ids, and for random-like
/// output a million ids collide with probability ~1e-27. Not keyed: whoever
/// writes the file could collide ids on purpose, but they could equally repeat one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdKey(u64, u64);

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Tables of `IdKey`s use the key itself: it is already a hash.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `IdKey`; fold anything else so it still hashes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

pub type KeySet = HashSet<IdKey, BuildHasherDefault<KeyHasher>>;

impl IdKey {
    pub fn of(id: &str) -> Self {
        const LANE_A: [u64; 2] = [0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9];
        const LANE_B: [u64; 2] = [0xc2b2_ae3d_27d4_eb4f, 0x94d0_49bb_1331_11eb];
        let bytes = id.as_bytes();
        let length = bytes.len() as u64;
        let (mut a, mut b) = (length ^ LANE_A[0], length.rotate_left(32) ^ LANE_B[0]);
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            let word = u64::from_le_bytes(word);
            a = fold(a ^ word, LANE_A[1]);
            b = fold(b ^ word, LANE_B[1]);
        }
        Self(fold(a, LANE_A[0]), fold(b, LANE_B[0]))
    }
}

/// The 128-bit product of `x` and `k`, high half xor low half.
fn fold(x: u64, k: u64) -> u64 {
    let product = u128::from(x) * u128::from(k);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_keys_differ_for_different_ids() {
        // Near-identical ids (one byte apart, lengths across the 8-byte chunking,
        // trailing zeros) all get distinct keys in both lanes.
        let mut ids: Vec<String> = (0..200_000).map(|i| format!("C{i:07}")).collect();
        ids.extend((0..20).map(|n| "\0".repeat(n)));
        ids.extend((1..20).map(|n| "a".repeat(n)));
        let keys: HashSet<IdKey> = ids.iter().map(|id| IdKey::of(id)).collect();
        assert_eq!(keys.len(), ids.len());
        let lane_a: HashSet<u64> = keys.iter().map(|k| k.0).collect();
        let lane_b: HashSet<u64> = keys.iter().map(|k| k.1).collect();
        assert_eq!((lane_a.len(), lane_b.len()), (ids.len(), ids.len()));
        assert_eq!(IdKey::of("C1"), IdKey::of("C1"));
    }
}
