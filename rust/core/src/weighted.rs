//! Weighted choice among n items in O(log n) per draw and per weight update: a Fenwick
//! (binary indexed) tree over integer weights. Integers keep draws exact, so a tree rebuilt
//! from a checkpoint chooses exactly what the incrementally updated one would have.

/// Integer weights with prefix sums; `choose(r)` for `r < total()` picks item `i` with
/// probability `weight[i] / total()` when `r` is uniform.
#[derive(Clone, Debug)]
pub struct WeightedChoice {
    tree: Vec<u64>,
    weights: Vec<u64>,
    total: u64,
}

impl WeightedChoice {
    /// A tree over `weights` (zero weights are never chosen).
    pub fn new(weights: &[u64]) -> Self {
        let n = weights.len();
        let mut tree = vec![0u64; n + 1];
        tree[1..].copy_from_slice(weights);
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                tree[parent] += tree[i];
            }
        }
        WeightedChoice {
            tree,
            weights: weights.to_vec(),
            total: weights.iter().sum(),
        }
    }

    /// The sum of all weights.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The current weight of item `i`.
    pub fn weight(&self, i: usize) -> u64 {
        self.weights[i]
    }

    /// Sets the weight of item `i`.
    pub fn set(&mut self, i: usize, weight: u64) {
        let old = self.weights[i];
        self.weights[i] = weight;
        self.total = self.total - old + weight;
        let mut j = i + 1;
        while j < self.tree.len() {
            self.tree[j] = self.tree[j] - old + weight;
            j += j & j.wrapping_neg();
        }
    }

    /// The item whose cumulative weight interval contains `r` (requires `r < total()`).
    pub fn choose(&self, mut r: u64) -> usize {
        debug_assert!(r < self.total);
        let n = self.tree.len() - 1;
        let mut pos = 0usize;
        let mut step = if n == 0 {
            0
        } else {
            1usize << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= r {
                pos = next;
                r -= self.tree[next];
            }
            step >>= 1;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_choose(weights: &[u64], r: u64) -> usize {
        let mut acc = 0;
        for (i, &w) in weights.iter().enumerate() {
            acc += w;
            if r < acc {
                return i;
            }
        }
        unreachable!()
    }

    #[test]
    fn choose_matches_a_linear_scan() {
        let weights = [3u64, 0, 5, 1, 0, 7, 2];
        let tree = WeightedChoice::new(&weights);
        assert_eq!(tree.total(), 18);
        for r in 0..18 {
            assert_eq!(tree.choose(r), naive_choose(&weights, r), "r={r}");
        }
    }

    #[test]
    fn updates_match_a_fresh_tree() {
        let mut weights = vec![4u64, 1, 6, 2, 9, 3, 8, 5, 7];
        let mut tree = WeightedChoice::new(&weights);
        for (i, w) in [(2usize, 0u64), (0, 11), (8, 0), (4, 1)] {
            tree.set(i, w);
            weights[i] = w;
            let fresh = WeightedChoice::new(&weights);
            assert_eq!(tree.total(), fresh.total());
            for r in 0..tree.total() {
                assert_eq!(tree.choose(r), naive_choose(&weights, r));
                assert_eq!(fresh.choose(r), naive_choose(&weights, r));
            }
        }
    }
}
