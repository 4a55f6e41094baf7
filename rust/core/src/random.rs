//! Counter-based randomness: every random number is a pure hash of its coordinates
//! (seed, epoch, shard, step, ...), so any point of a stream can be recomputed without replay,
//! and a seeded permutation of `0..n` is evaluated at one position in O(1) memory.

/// The splitmix64 finalizer: a fast, well-mixed bijection on u64.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a tuple of coordinates to one u64; different tuples (including different lengths)
/// give independent-looking values.
pub fn hash(parts: &[u64]) -> u64 {
    let mut h = mix64(parts.len() as u64 ^ 0x6a09_e667_f3bc_c908);
    for &p in parts {
        h = mix64(h ^ mix64(p));
    }
    h
}

/// Maps a uniform u64 onto `0..n` without modulo bias worth caring about (multiply-high).
pub fn below(u: u64, n: u64) -> u64 {
    ((u as u128 * n as u128) >> 64) as u64
}

/// A seeded bijection on `0..n`: a balanced Feistel network on the smallest even number of
/// bits that covers `n`, with cycle walking to stay inside the domain (expected < 4 steps).
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; Self::ROUNDS],
}

impl Permutation {
    const ROUNDS: usize = 6;

    /// The permutation of `0..n` selected by `key`.
    pub fn new(n: u64, key: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut keys = [0u64; Self::ROUNDS];
        for (round, k) in keys.iter_mut().enumerate() {
            *k = hash(&[key, round as u64]);
        }
        Permutation { n, half_bits, keys }
    }

    /// The image of `index` (which must be `< n`).
    pub fn apply(&self, index: u64) -> u64 {
        debug_assert!(index < self.n);
        let mut x = index;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for &k in &self.keys {
            let next = left ^ (mix64(right ^ k) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection_for_many_sizes() {
        for n in [1u64, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            let p = Permutation::new(n, 42 + n);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.apply(i);
                assert!(j < n);
                assert!(!seen[j as usize], "n={n}: {j} hit twice");
                seen[j as usize] = true;
            }
        }
    }

    #[test]
    fn permutation_depends_on_the_key() {
        let a: Vec<u64> = (0..50).map(|i| Permutation::new(50, 1).apply(i)).collect();
        let b: Vec<u64> = (0..50).map(|i| Permutation::new(50, 2).apply(i)).collect();
        assert_ne!(a, b);
        let identity: Vec<u64> = (0..50).collect();
        assert_ne!(a, identity);
    }

    #[test]
    fn hash_separates_tuples_and_lengths() {
        assert_ne!(hash(&[1, 2]), hash(&[2, 1]));
        assert_ne!(hash(&[0]), hash(&[0, 0]));
        assert_eq!(hash(&[7, 8, 9]), hash(&[7, 8, 9]));
    }

    #[test]
    fn below_stays_in_range_and_spreads() {
        let n = 10;
        let mut counts = [0u32; 10];
        for i in 0..10_000u64 {
            let v = below(hash(&[i]), n);
            counts[v as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }
}
