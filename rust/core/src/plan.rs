//! The sampling plan: which record of which file comes next, for one shard of the data.
//!
//! Inputs are the record count of every file, optional per-file weights and clip counts, a seed
//! and the shard (`shard` of `num_shards`, where the caller computes the global shard id as
//! `rank * num_workers + worker`). The stream is a pure function of those inputs and the epoch.
//!
//! - **Clip**: file `f` keeps a seeded, fixed (epoch-independent) subset of `clip[f]` records.
//! - **Partition**: each file's kept records are cut into `num_shards` contiguous runs; the runs'
//!   remainders rotate over the shards globally, so shard sizes differ by at most one record even
//!   when files have fewer records than there are shards, and every shard reads contiguous runs.
//! - **Infinite**: each draw picks one of the shard's file parts (O(log n), Fenwick tree). The
//!   per-shard probabilities are scaled (Sinkhorn) so that every shard's draws form a proper
//!   distribution and their average over shards is ∝ the file weights, even for files that only
//!   some shards hold; so the union of all shards draws files ∝ weight (shards draw at equal
//!   rates). Within a part the records come in a fresh seeded order on every pass.
//! - **Finite**: every record of the shard exactly once per epoch; weights only change the order
//!   (an exhausted file leaves the draw). Without shuffle, files and records come in stored order.
//!
//! The state is `(epoch, step, draws per part)`: randomness is counter-based, so restoring it
//! reproduces the uninterrupted stream exactly.
use std::fmt;

use crate::random::{below, hash, Permutation};
use crate::weighted::WeightedChoice;

/// Tags that keep the hash streams of different decisions apart.
const TAG_CLIP: u64 = 1;
const TAG_CHOICE: u64 = 2;
const TAG_ORDER: u64 = 3;
/// Weights are quantized to integers summing to about 2^52 so that draws are exact.
const WEIGHT_SCALE: f64 = (1u64 << 52) as f64;
/// Sinkhorn scaling of per-shard weights stops at this relative error or iteration count.
const SINKHORN_TOLERANCE: f64 = 1e-12;
const SINKHORN_ITERATIONS: usize = 1000;

/// Everything the stream depends on, besides the epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanSpec {
    /// Records in each file.
    pub counts: Vec<u64>,
    /// Per-file sampling weights (∝ probability); `None` means uniform over files.
    pub weights: Option<Vec<f64>>,
    /// Per-file maximum number of records; `None` keeps every record.
    pub clip: Option<Vec<u64>>,
    pub seed: u64,
    /// Global shard id, `rank * num_workers + worker`.
    pub shard: u64,
    /// `num_replicas * num_workers`.
    pub num_shards: u64,
    pub infinite: bool,
    pub shuffle: bool,
}

/// A bad plan specification or state; the message names the offending file or field.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    BadWeight {
        file: usize,
        weight: f64,
    },
    BadShard {
        shard: u64,
        num_shards: u64,
    },
    NothingToDraw {
        shard: u64,
        num_shards: u64,
    },
    BadState(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::LengthMismatch {
                what,
                expected,
                got,
            } => {
                write!(f, "{what} has {got} entries but there are {expected} files")
            }
            PlanError::BadWeight { file, weight } => {
                write!(
                    f,
                    "weight of file {file} is {weight}; weights must be finite and >= 0"
                )
            }
            PlanError::BadShard { shard, num_shards } => {
                write!(f, "shard {shard} is out of range for {num_shards} shards")
            }
            PlanError::NothingToDraw { shard, num_shards } => write!(
                f,
                "shard {shard} of {num_shards} has no record with a positive weight, \
                 so an infinite stream cannot be drawn (too few records or all weights zero)"
            ),
            PlanError::BadState(msg) => write!(f, "invalid plan state: {msg}"),
        }
    }
}

impl std::error::Error for PlanError {}

/// The records (indices into its file, ascending) that one shard reads from one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub file: usize,
    pub records: Vec<u64>,
}

/// One planned read: record `record` (index in the file's index) of file `file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Item {
    pub file: usize,
    pub record: u64,
}

/// The position in a stream: epoch, draws made this epoch, and draws made from each part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanState {
    pub epoch: u64,
    pub step: u64,
    pub draws: Vec<u64>,
}

/// The records file `file` keeps under `clip`: all of them, or a seeded fixed subset (sorted).
pub fn clipped_records(file: usize, count: u64, clip: Option<u64>, seed: u64) -> Vec<u64> {
    match clip {
        Some(c) if c < count => {
            let perm = Permutation::new(count, hash(&[seed, TAG_CLIP, file as u64]));
            let mut kept: Vec<u64> = (0..c).map(|i| perm.apply(i)).collect();
            kept.sort_unstable();
            kept
        }
        _ => (0..count).collect(),
    }
}

/// The contiguous runs of each file's kept records that belong to `shard`; parts with no
/// records are left out. Remainders rotate over shards across files, which keeps shard sizes
/// within one record of each other.
pub fn shard_parts(kept: &[Vec<u64>], shard: u64, num_shards: u64) -> Vec<Part> {
    let lengths: Vec<u64> = kept.iter().map(|r| r.len() as u64).collect();
    let mut parts = Vec::new();
    for (file, rotation) in rotations(&lengths, num_shards).into_iter().enumerate() {
        let (start, len) = run(lengths[file], shard, rotation, num_shards);
        if len > 0 {
            let records = kept[file][start as usize..(start + len) as usize].to_vec();
            parts.push(Part { file, records });
        }
    }
    parts
}

/// The shard that receives each file's first remainder record: remainders rotate globally.
fn rotations(lengths: &[u64], num_shards: u64) -> Vec<u64> {
    let mut rotation = 0u64;
    lengths
        .iter()
        .map(|&m| {
            let this = rotation;
            rotation = (rotation + m % num_shards) % num_shards;
            this
        })
        .collect()
}

/// `(start, len)` of the run of a file of `m` kept records that goes to `shard`.
fn run(m: u64, shard: u64, rotation: u64, num_shards: u64) -> (u64, u64) {
    let (base, extra) = (m / num_shards, m % num_shards);
    let start = shard * base + extras_before(shard, rotation, extra, num_shards);
    let len = base + u64::from(has_extra(shard, rotation, extra, num_shards));
    (start, len)
}

/// Infinite-mode weights of `parts` (this shard's runs): each shard's draws form a proper
/// distribution over the files it holds, and the average over all shards is ∝ the file
/// weights, even for files that only some shards hold. Found by Sinkhorn scaling of the
/// (shard × file) matrix that starts at `weight × run length / file length`.
fn infinite_part_weights(
    lengths: &[u64],
    weights: &[f64],
    parts: &[Part],
    shard: u64,
    num_shards: u64,
) -> Vec<f64> {
    // Sparse columns: for each file, (shard, value) over the shards that hold a run of it.
    let mut columns: Vec<Vec<(u64, f64)>> = rotations(lengths, num_shards)
        .into_iter()
        .enumerate()
        .map(|(f, rotation)| {
            let m = lengths[f];
            let holders = if m >= num_shards { num_shards } else { m };
            (0..holders)
                .map(|k| {
                    let s = if m >= num_shards {
                        k
                    } else {
                        (rotation + k) % num_shards
                    };
                    let len = run(m, s, rotation, num_shards).1;
                    (s, weights[f] * len as f64 / m as f64)
                })
                .filter(|&(_, v)| v > 0.0)
                .collect()
        })
        .collect();
    let row_sums = |columns: &[Vec<(u64, f64)>]| {
        let mut sums = vec![0f64; num_shards as usize];
        for &(s, v) in columns.iter().flatten() {
            sums[s as usize] += v;
        }
        sums
    };
    let mut sums = row_sums(&columns);
    let live_rows = sums.iter().filter(|&&r| r > 0.0).count() as f64;
    let column_weight: Vec<f64> = columns
        .iter()
        .enumerate()
        .map(|(f, c)| if c.is_empty() { 0.0 } else { weights[f] })
        .collect();
    let total_weight: f64 = column_weight.iter().sum();
    for _ in 0..SINKHORN_ITERATIONS {
        let mut worst = 0f64;
        for (f, column) in columns.iter_mut().enumerate() {
            if column.is_empty() {
                continue;
            }
            column.iter_mut().for_each(|(s, v)| *v /= sums[*s as usize]);
            let sum: f64 = column.iter().map(|&(_, v)| v).sum();
            let target = live_rows * column_weight[f] / total_weight;
            worst = worst.max((sum / target - 1.0).abs());
            column.iter_mut().for_each(|(_, v)| *v *= target / sum);
        }
        sums = row_sums(&columns);
        if worst < SINKHORN_TOLERANCE {
            break;
        }
    }
    parts
        .iter()
        .map(|p| {
            columns[p.file]
                .iter()
                .find(|&&(s, _)| s == shard)
                .map_or(0.0, |&(_, v)| v)
        })
        .collect()
}

/// Whether `shard` is among the `extra` shards starting at `rotation` (cyclically).
fn has_extra(shard: u64, rotation: u64, extra: u64, num_shards: u64) -> bool {
    (shard + num_shards - rotation) % num_shards < extra
}

/// How many of the shards `0..shard` are among the `extra` shards starting at `rotation`.
fn extras_before(shard: u64, rotation: u64, extra: u64, num_shards: u64) -> u64 {
    let end = rotation + extra;
    if end <= num_shards {
        shard.clamp(rotation, end) - rotation
    } else {
        shard.min(end - num_shards) + shard.saturating_sub(rotation)
    }
}

/// A stream of [`Item`]s for one shard.
#[derive(Clone, Debug)]
pub struct Plan {
    seed: u64,
    shard: u64,
    num_shards: u64,
    infinite: bool,
    shuffle: bool,
    parts: Vec<Part>,
    /// Kept records over all shards.
    total: u64,
    weights: Vec<u64>,
    chooser: WeightedChoice,
    epoch: u64,
    step: u64,
    draws: Vec<u64>,
    /// Finite, unshuffled streams read parts in order; this is the first unfinished part.
    cursor: usize,
}

impl Plan {
    /// Validates `spec` and builds the plan at the start of epoch 0.
    pub fn new(spec: &PlanSpec) -> Result<Plan, PlanError> {
        let n = spec.counts.len();
        if spec.num_shards == 0 || spec.shard >= spec.num_shards {
            return Err(PlanError::BadShard {
                shard: spec.shard,
                num_shards: spec.num_shards,
            });
        }
        if let Some(w) = &spec.weights {
            check_len("weights", n, w.len())?;
            if let Some((file, &weight)) = w
                .iter()
                .enumerate()
                .find(|(_, w)| !w.is_finite() || **w < 0.0)
            {
                return Err(PlanError::BadWeight { file, weight });
            }
        }
        if let Some(c) = &spec.clip {
            check_len("clip", n, c.len())?;
        }
        let kept: Vec<Vec<u64>> = (0..n)
            .map(|f| {
                let clip = spec.clip.as_ref().map(|c| c[f]);
                clipped_records(f, spec.counts[f], clip, spec.seed)
            })
            .collect();
        let parts = shard_parts(&kept, spec.shard, spec.num_shards);
        let file_weights = spec.weights.clone().unwrap_or_else(|| vec![1.0; n]);
        let effective: Vec<f64> = if spec.infinite {
            let lengths: Vec<u64> = kept.iter().map(|r| r.len() as u64).collect();
            infinite_part_weights(&lengths, &file_weights, &parts, spec.shard, spec.num_shards)
        } else {
            parts.iter().map(|p| file_weights[p.file]).collect()
        };
        let weights = quantize(&effective, !spec.infinite);
        if spec.infinite && weights.iter().all(|&w| w == 0) {
            return Err(PlanError::NothingToDraw {
                shard: spec.shard,
                num_shards: spec.num_shards,
            });
        }
        let draws = vec![0; parts.len()];
        Ok(Plan {
            seed: spec.seed,
            shard: spec.shard,
            num_shards: spec.num_shards,
            infinite: spec.infinite,
            shuffle: spec.shuffle,
            chooser: WeightedChoice::new(&weights),
            total: kept.iter().map(|r| r.len() as u64).sum(),
            parts,
            weights,
            epoch: 0,
            step: 0,
            draws,
            cursor: 0,
        })
    }

    /// The records this shard reads per epoch (the length of a finite stream).
    pub fn len(&self) -> u64 {
        self.parts.iter().map(|p| p.records.len() as u64).sum()
    }

    /// Records per epoch in the smallest shard (all shards hold this many or one more).
    pub fn smallest_shard_len(&self) -> u64 {
        self.total / self.num_shards
    }

    /// Draws made so far this epoch.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Whether this shard has no records at all.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// This shard's parts, in file order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Restarts the stream at the beginning of `epoch`.
    pub fn start_epoch(&mut self, epoch: u64) {
        let state = PlanState {
            epoch,
            step: 0,
            draws: vec![0; self.parts.len()],
        };
        self.set_state(&state)
            .expect("a fresh state is always valid");
    }

    /// The position in the stream, enough to resume it exactly.
    pub fn state(&self) -> PlanState {
        PlanState {
            epoch: self.epoch,
            step: self.step,
            draws: self.draws.clone(),
        }
    }

    /// Moves to a position obtained from [`Plan::state`] on a plan with the same spec.
    pub fn set_state(&mut self, state: &PlanState) -> Result<(), PlanError> {
        if state.draws.len() != self.parts.len() {
            return Err(PlanError::BadState(format!(
                "{} per-part counters for a shard with {} parts (different files, clip or shard?)",
                state.draws.len(),
                self.parts.len()
            )));
        }
        if state.draws.iter().sum::<u64>() != state.step {
            return Err(PlanError::BadState(
                "step is not the sum of the per-part draws".into(),
            ));
        }
        let mut weights = self.weights.clone();
        for (p, &d) in state.draws.iter().enumerate() {
            let len = self.parts[p].records.len() as u64;
            if !self.infinite {
                if d > len {
                    return Err(PlanError::BadState(format!(
                        "{d} draws from part {p}, which has {len} records"
                    )));
                }
                if d == len {
                    weights[p] = 0;
                }
            }
        }
        self.chooser = WeightedChoice::new(&weights);
        self.epoch = state.epoch;
        self.step = state.step;
        self.draws = state.draws.clone();
        self.cursor = 0;
        self.advance_cursor();
        Ok(())
    }

    fn advance_cursor(&mut self) {
        while self.cursor < self.parts.len()
            && self.draws[self.cursor] == self.parts[self.cursor].records.len() as u64
        {
            self.cursor += 1;
        }
    }

    /// The part drawn at the current step, or `None` when a finite epoch is over.
    fn choose_part(&mut self) -> Option<usize> {
        if !self.infinite && !self.shuffle {
            self.advance_cursor();
            return (self.cursor < self.parts.len()).then_some(self.cursor);
        }
        if self.chooser.total() == 0 {
            return None;
        }
        let u = hash(&[
            self.seed,
            TAG_CHOICE,
            self.epoch,
            self.shard,
            self.num_shards,
            self.step,
        ]);
        Some(self.chooser.choose(below(u, self.chooser.total())))
    }
}

impl Iterator for Plan {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        let p = self.choose_part()?;
        let part = &self.parts[p];
        let len = part.records.len() as u64;
        let d = self.draws[p];
        let (pass, pos) = (d / len, d % len);
        let index = if self.shuffle {
            let key = hash(&[
                self.seed,
                TAG_ORDER,
                self.epoch,
                self.shard,
                self.num_shards,
                part.file as u64,
                pass,
            ]);
            Permutation::new(len, key).apply(pos)
        } else {
            pos
        };
        let item = Item {
            file: part.file,
            record: part.records[index as usize],
        };
        self.draws[p] = d + 1;
        self.step += 1;
        if !self.infinite && d + 1 == len && self.shuffle {
            self.chooser.set(p, 0);
        }
        Some(item)
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), PlanError> {
    if expected == got {
        Ok(())
    } else {
        Err(PlanError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Integer weights ∝ `weights`, summing to about 2^52. A positive weight never rounds to zero;
/// with `keep_zero_drawable` a zero weight becomes 1 (finite streams must still read it, last).
fn quantize(weights: &[f64], keep_zero_drawable: bool) -> Vec<u64> {
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|&w| {
            let q = if total > 0.0 {
                (w / total * WEIGHT_SCALE).round() as u64
            } else {
                0
            };
            if q == 0 && (w > 0.0 || keep_zero_drawable) {
                1
            } else {
                q
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn spec(counts: Vec<u64>, shard: u64, num_shards: u64, infinite: bool) -> PlanSpec {
        PlanSpec {
            counts,
            weights: None,
            clip: None,
            seed: 7,
            shard,
            num_shards,
            infinite,
            shuffle: true,
        }
    }

    fn all_shards(base: &PlanSpec) -> Vec<Vec<Item>> {
        (0..base.num_shards)
            .map(|s| {
                Plan::new(&PlanSpec {
                    shard: s,
                    ..base.clone()
                })
                .unwrap()
                .collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn finite_shards_are_disjoint_covering_and_balanced(
            counts in proptest::collection::vec(0u64..40, 1..12),
            clip_raw in proptest::collection::vec(proptest::option::of(0u64..30), 12),
            num_shards in 1u64..17,
            shuffle in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let clip: Vec<u64> = counts
                .iter()
                .zip(&clip_raw)
                .map(|(&n, c)| c.unwrap_or(n))
                .collect();
            let base = PlanSpec {
                clip: Some(clip.clone()),
                seed,
                shuffle,
                ..spec(counts.clone(), 0, num_shards, false)
            };
            let shards = all_shards(&base);
            let mut seen = HashSet::new();
            for items in &shards {
                for it in items {
                    prop_assert!(seen.insert(*it), "{it:?} read twice");
                }
            }
            let expected: u64 = counts.iter().zip(&clip).map(|(&n, &c)| n.min(c)).sum();
            prop_assert_eq!(seen.len() as u64, expected);
            for (f, (&n, &c)) in counts.iter().zip(&clip).enumerate() {
                let per_file = seen.iter().filter(|it| it.file == f).count() as u64;
                prop_assert_eq!(per_file, n.min(c));
                prop_assert!(seen.iter().filter(|it| it.file == f).all(|it| it.record < n));
            }
            let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "unbalanced shards {sizes:?}");
        }

        #[test]
        fn resuming_from_any_state_continues_the_same_stream(
            counts in proptest::collection::vec(1u64..30, 1..6),
            cut in 0usize..60,
            infinite in any::<bool>(),
            shuffle in any::<bool>(),
        ) {
            let s = PlanSpec {
                weights: Some(counts.iter().map(|&c| 1.0 + (c % 3) as f64).collect()),
                shuffle,
                ..spec(counts, 0, 1, infinite)
            };
            let full: Vec<Item> = Plan::new(&s).unwrap().take(120).collect();
            let mut first = Plan::new(&s).unwrap();
            let head: Vec<Item> = first.by_ref().take(cut).collect();
            let mut resumed = Plan::new(&s).unwrap();
            resumed.set_state(&first.state()).unwrap();
            let tail: Vec<Item> = resumed.take(120 - head.len()).collect();
            prop_assert_eq!([head, tail].concat(), full);
        }
    }

    #[test]
    fn files_smaller_than_the_shard_count_spread_over_shards() {
        // Ten one-record files over four shards: Slideflow would put all of them on shard 0.
        let shards = all_shards(&spec(vec![1; 10], 0, 4, false));
        let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 2, 2]);
    }

    #[test]
    fn shards_read_contiguous_runs_of_each_file() {
        let parts = shard_parts(&[(0..10).collect(), (0..7).collect()], 1, 3);
        assert_eq!(
            parts[0],
            Part {
                file: 0,
                records: vec![4, 5, 6]
            }
        );
        assert_eq!(
            parts[1],
            Part {
                file: 1,
                records: vec![2, 3, 4]
            }
        );
    }

    #[test]
    fn clip_is_a_fixed_seeded_subset() {
        let a = clipped_records(0, 100, Some(10), 1);
        assert_eq!(a, clipped_records(0, 100, Some(10), 1));
        assert_ne!(a, clipped_records(0, 100, Some(10), 2));
        assert_ne!(a, clipped_records(1, 100, Some(10), 1));
        assert_ne!(
            a,
            (0..10).collect::<Vec<u64>>(),
            "not simply the first records"
        );
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(clipped_records(0, 5, Some(10), 1), vec![0, 1, 2, 3, 4]);
        assert!(clipped_records(0, 5, Some(0), 1).is_empty());
    }

    #[test]
    fn infinite_passes_reshuffle_and_cover_each_file() {
        let mut plan = Plan::new(&spec(vec![20], 0, 1, true)).unwrap();
        let first: Vec<u64> = plan.by_ref().take(20).map(|i| i.record).collect();
        let second: Vec<u64> = plan.by_ref().take(20).map(|i| i.record).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<u64>>());
        assert_ne!(first, second, "each pass has a fresh order");
    }

    #[test]
    fn infinite_frequencies_follow_weights() {
        let weights = vec![1.0, 2.0, 5.0, 0.0];
        let s = PlanSpec {
            weights: Some(weights),
            ..spec(vec![50, 3, 80, 10], 0, 1, true)
        };
        let mut counts = [0u64; 4];
        for it in Plan::new(&s).unwrap().take(80_000) {
            counts[it.file] += 1;
        }
        assert_eq!(counts[3], 0);
        for (f, w) in [(0usize, 1.0), (1, 2.0), (2, 5.0)] {
            let p = counts[f] as f64 / 80_000.0;
            assert!((p - w / 8.0).abs() < 0.01, "file {f}: {p}");
        }
    }

    #[test]
    fn union_of_shards_follows_weights_even_with_uneven_parts() {
        // File 1 has fewer records than shards, so only some shards hold it.
        let base = PlanSpec {
            weights: Some(vec![1.0, 1.0, 2.0]),
            ..spec(vec![40, 3, 41], 0, 8, true)
        };
        let mut counts = [0f64; 3];
        for s in 0..8 {
            for it in Plan::new(&PlanSpec {
                shard: s,
                ..base.clone()
            })
            .unwrap()
            .take(20_000)
            {
                counts[it.file] += 1.0;
            }
        }
        let total: f64 = counts.iter().sum();
        let freq: Vec<f64> = counts.iter().map(|c| c / total).collect();
        for (f, expect) in [(0usize, 0.25), (1, 0.25), (2, 0.5)] {
            assert!((freq[f] - expect).abs() < 0.03, "file {f}: {freq:?}");
        }
    }

    #[test]
    fn shards_and_seeds_give_different_streams() {
        let base = spec(vec![100, 100], 0, 2, true);
        let a: Vec<Item> = Plan::new(&base).unwrap().take(50).collect();
        let b: Vec<Item> = Plan::new(&PlanSpec {
            shard: 1,
            ..base.clone()
        })
        .unwrap()
        .take(50)
        .collect();
        let c: Vec<Item> = Plan::new(&PlanSpec {
            seed: 8,
            ..base.clone()
        })
        .unwrap()
        .take(50)
        .collect();
        let again: Vec<Item> = Plan::new(&base).unwrap().take(50).collect();
        assert_eq!(a, again);
        assert!(a.iter().all(|it| !b.contains(it)));
        assert_ne!(a, c);
    }

    #[test]
    fn epochs_reorder_finite_streams() {
        let mut plan = Plan::new(&spec(vec![30, 30], 0, 1, false)).unwrap();
        let e0: Vec<Item> = plan.by_ref().collect();
        plan.start_epoch(1);
        let e1: Vec<Item> = plan.by_ref().collect();
        assert_eq!(e0.len(), 60);
        assert_ne!(e0, e1);
        let (s0, s1): (HashSet<Item>, HashSet<Item>) =
            (e0.into_iter().collect(), e1.into_iter().collect());
        assert_eq!(s0, s1);
    }

    #[test]
    fn unshuffled_finite_stream_is_in_stored_order() {
        let s = PlanSpec {
            shuffle: false,
            ..spec(vec![2, 3], 0, 1, false)
        };
        let items: Vec<(usize, u64)> = Plan::new(&s).unwrap().map(|i| (i.file, i.record)).collect();
        assert_eq!(items, vec![(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]);
    }

    #[test]
    fn bad_specs_are_rejected_with_the_reason() {
        let err = |s: PlanSpec| Plan::new(&s).unwrap_err().to_string();
        let base = spec(vec![5, 5], 0, 1, true);
        assert!(err(PlanSpec {
            weights: Some(vec![1.0]),
            ..base.clone()
        })
        .contains("weights has 1"));
        assert!(err(PlanSpec {
            weights: Some(vec![1.0, -1.0]),
            ..base.clone()
        })
        .contains("file 1"));
        assert!(err(PlanSpec {
            weights: Some(vec![f64::NAN, 1.0]),
            ..base.clone()
        })
        .contains("file 0"));
        assert!(err(PlanSpec {
            clip: Some(vec![1, 2, 3]),
            ..base.clone()
        })
        .contains("clip has 3"));
        assert!(err(PlanSpec {
            shard: 1,
            ..base.clone()
        })
        .contains("out of range"));
        assert!(err(PlanSpec {
            weights: Some(vec![0.0, 0.0]),
            ..base.clone()
        })
        .contains("no record"));
        assert!(err(spec(vec![1], 1, 2, true)).contains("shard 1 of 2"));
        let mut plan = Plan::new(&base).unwrap();
        let bad = PlanState {
            epoch: 0,
            step: 3,
            draws: vec![1],
        };
        assert!(plan
            .set_state(&bad)
            .unwrap_err()
            .to_string()
            .contains("1 per-part counters"));
    }

    #[test]
    fn zero_weight_files_are_still_read_once_when_finite() {
        let s = PlanSpec {
            weights: Some(vec![0.0, 1.0]),
            ..spec(vec![4, 4], 0, 1, false)
        };
        let items: Vec<Item> = Plan::new(&s).unwrap().collect();
        assert_eq!(items.len(), 8);
        assert!(
            items[..4].iter().all(|i| i.file == 1),
            "zero-weight file comes last"
        );
    }
}
