//! A fast hash map keyed by image ids (`&str`): the Fx multiply-rotate hash instead of the
//! standard SipHash. The keys come from the files being scored, not from an adversary, so
//! resistance to hash flooding is not needed; lookups by image id are the hot spot of
//! indexing tens of thousands of boxes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The Fx hash (as rustc's `FxHasher`), eight bytes at a time.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map from image ids (or labels) to `V`.
pub type IdMap<'a, V> = HashMap<&'a str, V, BuildHasherDefault<IdHasher>>;

/// A set of image ids.
pub type IdSet<'a> = HashSet<&'a str, BuildHasherDefault<IdHasher>>;
