//! Per-pixel kernels of stain normalization on batches of RGB uint8 images `[B, H, W, 3]`.
//!
//! These are the native versions of `jaxwsi.norm`'s numpy reference code and follow it step by
//! step, with the same constants, lookup tables and float32 arithmetic. Where they differ, it is
//! by float rounding only, and outputs stay within one grey level of numpy's (tested in
//! `tests/test_norm_native.py`): sums are taken in f64; Macenko's `exp` is a vectorized f32
//! polynomial (within 2 ulp of libm's, as numpy's own SIMD `exp` is); its angle percentiles order
//! pixels by a monotone pseudo-angle and take `atan2` of the selected ones only.
//!
//! - [`reinhard`]: sRGB → linear (256-entry table) → XYZ → CIE L*a*b* (f32 `cbrt`), per-image
//!   (optionally masked) mean/std, `(x - mean) / std * target_std + target_mean`, back through
//!   XYZ and linear light to uint8 (a 2^16-step table), with optional brightness standardization.
//! - Macenko in three passes, with the small per-image linear algebra (a 3×3 eigendecomposition,
//!   a 3×2 pseudo-inverse) left to numpy between them: [`od_tissue_covariance`],
//!   [`od_angle_percentiles`] and [`od_reconstruct`].
//!
//! Work runs on rayon's current pool, parallel over images and over bands of rows within an image.
//! Per-image sums are reduced band by band in a fixed order, so results do not depend on the
//! number of threads, and each image's result does not depend on the rest of the batch.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use rayon::prelude::*;

/// Rows of an image handled by one parallel task.
const BAND_ROWS: usize = 8;

/// A bad argument to a kernel (wrong buffer length or parameter count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StainError(pub String);

impl fmt::Display for StainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StainError {}

/// Geometry of a batch of RGB images stored contiguously as `[batch, height, width, 3]` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchShape {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
}

impl BatchShape {
    /// Pixels of one image.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Bytes of one image.
    fn image_bytes(&self) -> usize {
        self.pixels() * 3
    }

    /// Bytes of one band of rows.
    fn band_bytes(&self) -> usize {
        BAND_ROWS * self.width * 3
    }

    /// Checks that `pixels` holds exactly this batch (and that it is not empty).
    fn check(&self, what: &str, pixels: usize) -> Result<(), StainError> {
        if self.batch == 0 || self.height == 0 || self.width == 0 {
            return Err(StainError(format!("{what}: empty batch shape {self:?}")));
        }
        if pixels != self.batch * self.image_bytes() {
            return Err(StainError(format!(
                "{what}: {pixels} bytes do not hold a batch of shape [{}, {}, {}, 3]",
                self.batch, self.height, self.width
            )));
        }
        Ok(())
    }
}

fn check_count(what: &str, got: usize, batch: usize) -> Result<(), StainError> {
    if got == batch {
        Ok(())
    } else {
        Err(StainError(format!(
            "{what}: {got} values for a batch of {batch} images"
        )))
    }
}

// ------------------------------------------------------------------------------ colour tables

/// sRGB (D65) → CIE XYZ (rows: X, Y, Z), as in `jaxwsi.norm.color`.
const RGB_TO_XYZ: [[f32; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
const WHITE_D65: [f32; 3] = [0.95047, 1.0, 1.08883];
const DELTA: f64 = 6.0 / 29.0;
/// Steps of the linear-light → uint8 table.
const UINT8_STEPS: usize = 65535;

/// Tables and matrices of the L*a*b* conversion, built once.
struct LabTables {
    /// Linear light of each uint8 sRGB value.
    linear_of_uint8: [f32; 256],
    /// Rounded uint8 sRGB of linear light `i / UINT8_STEPS`.
    uint8_of_linear: Vec<u8>,
    /// Linear RGB (row vector) → XYZ relative to the white point: `xyz[j] = Σ_k rgb[k] m[k][j]`.
    rgb_to_xyz_white: [[f32; 3]; 3],
    /// Its inverse.
    xyz_white_to_rgb: [[f32; 3]; 3],
}

fn srgb_to_linear(v: f64) -> f64 {
    if v > 0.04045 {
        ((v + 0.055) / 1.055).powf(2.4)
    } else {
        v / 12.92
    }
}

fn linear_to_srgb(v: f64) -> f64 {
    if v > 0.0031308 {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    } else {
        12.92 * v
    }
}

/// Inverse of a 3×3 matrix by cofactors (the matrix here is far from singular).
fn inverse3(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let determinant: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    let mut inverse = [[0.0; 3]; 3];
    for (r, row) in inverse.iter_mut().enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = cofactor(c, r) / determinant;
        }
    }
    inverse
}

fn lab_tables() -> &'static LabTables {
    static TABLES: OnceLock<LabTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let linear_of_uint8 = std::array::from_fn(|i| srgb_to_linear(i as f64 / 255.0) as f32);
        let uint8_of_linear = (0..=UINT8_STEPS)
            .map(|i| {
                let value = linear_to_srgb(i as f64 / UINT8_STEPS as f64) * 255.0;
                value.round_ties_even().clamp(0.0, 255.0) as u8
            })
            .collect();
        // The transpose of RGB_TO_XYZ divided by the white point, in f32 as numpy computes it.
        let rgb_to_xyz_white: [[f32; 3]; 3] =
            std::array::from_fn(|k| std::array::from_fn(|j| RGB_TO_XYZ[j][k] / WHITE_D65[j]));
        let wide = rgb_to_xyz_white.map(|row| row.map(f64::from));
        let xyz_white_to_rgb = inverse3(wide).map(|row| row.map(|v| v as f32));
        LabTables {
            linear_of_uint8,
            uint8_of_linear,
            rgb_to_xyz_white,
            xyz_white_to_rgb,
        }
    })
}

/// Cube root of a positive normal f32: musl's `cbrtf` (what `f32::cbrt` runs here), inlined.
///
/// A bit-level first guess good to 5 bits, then two Halley steps in f64 (16 bits, then 47), and
/// one rounding to f32, so it agrees with the libm function bit for bit; inlined, the three
/// channels' divisions overlap instead of waiting on three calls.
#[inline(always)]
fn cbrt_positive(x: f32) -> f32 {
    const B1: u32 = 709_958_130; // (127 - 127.0 / 3 - 0.03306235651) * 2^23
    let guess = f32::from_bits((x.to_bits() & 0x7fff_ffff) / 3 + B1);
    let (x, mut t) = (f64::from(x), f64::from(guess));
    for _ in 0..2 {
        let cube = t * t * t;
        t = t * (x + x + cube) / (x + cube + cube);
    }
    t as f32
}

/// Round half to even, for |v| < 2^22 (the magic-number trick: no `rintf` call without SSE4.1).
#[inline(always)]
fn round_ties_even_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// A uint8 from a float, rounded half to even and clipped to [0, 255] (`color.to_uint8`).
#[inline(always)]
fn to_uint8(v: f32) -> u8 {
    round_ties_even_small(v.clamp(-1.0, 256.0)).clamp(0.0, 255.0) as u8
}

/// `v @ m` for a row vector `v` (sums in index order, as numpy's matmul inner loop).
#[inline(always)]
fn row_times<const K: usize, const J: usize>(v: [f32; K], m: &[[f32; J]; K]) -> [f32; J] {
    std::array::from_fn(|j| {
        let mut sum = v[0] * m[0][j];
        for k in 1..K {
            sum += v[k] * m[k][j];
        }
        sum
    })
}

/// CIE L*a*b* (D65) of linear-light RGB (`jaxwsi.norm.color.lab_from_linear`).
#[inline(always)]
fn lab_from_linear(linear: [f32; 3], tables: &LabTables) -> [f32; 3] {
    let xyz = row_times(linear, &tables.rgb_to_xyz_white);
    let f = xyz.map(|v| {
        if v > (DELTA * DELTA * DELTA) as f32 {
            cbrt_positive(v)
        } else {
            v / (3.0 * (DELTA * DELTA)) as f32 + (4.0 / 29.0) as f32
        }
    });
    [
        116.0 * f[1] - 16.0,
        500.0 * (f[0] - f[1]),
        200.0 * (f[1] - f[2]),
    ]
}

/// Linear-light RGB (unclipped) of CIE L*a*b* (`jaxwsi.norm.color.linear_from_lab`).
#[inline(always)]
fn linear_from_lab(lab: [f32; 3], tables: &LabTables) -> [f32; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let f = [fy + lab[1] / 500.0, fy, fy - lab[2] / 200.0];
    let xyz = f.map(|v| {
        if v > DELTA as f32 {
            v * v * v
        } else {
            (3.0 * (DELTA * DELTA)) as f32 * (v - (4.0 / 29.0) as f32)
        }
    });
    row_times(xyz, &tables.xyz_white_to_rgb)
}

/// Rounded uint8 sRGB of linear light, clipped to [0, 1] (`jaxwsi.norm.color.uint8_from_linear`).
#[inline(always)]
fn uint8_from_linear(linear: f32, tables: &LabTables) -> u8 {
    let index = (linear * UINT8_STEPS as f32 + 0.5).clamp(0.0, UINT8_STEPS as f32);
    tables.uint8_of_linear[index as usize]
}

/// L*a*b* of one uint8 sRGB pixel.
pub fn lab_of_pixel(rgb: [u8; 3]) -> [f32; 3] {
    let tables = lab_tables();
    lab_from_linear(rgb.map(|v| tables.linear_of_uint8[v as usize]), tables)
}

/// uint8 sRGB of one L*a*b* value (out-of-gamut channels clipped).
pub fn pixel_of_lab(lab: [f32; 3]) -> [u8; 3] {
    let tables = lab_tables();
    linear_from_lab(lab, tables).map(|v| uint8_from_linear(v, tables))
}

// ------------------------------------------------------------------------------ percentiles

/// numpy's linear interpolation between neighbouring order statistics (`numpy._lerp`).
fn lerp(low: f64, high: f64, t: f64) -> f64 {
    let difference = high - low;
    if t >= 0.5 {
        high - difference * (1.0 - t)
    } else {
        low + difference * t
    }
}

/// Where numpy's linear percentile `q` of `n` values falls: the lower rank and the fraction.
fn percentile_position(n: usize, q: f64) -> (usize, f64) {
    let position = q / 100.0 * (n - 1) as f64;
    let lower = (position.floor() as usize).min(n - 1);
    (lower, position - lower as f64)
}

/// The elements of rank `rank` and `rank + 1` (clamped to the last) of `values` under `cmp`.
fn select_two<T: Copy>(values: &mut [T], rank: usize, cmp: impl Fn(&T, &T) -> Ordering) -> (T, T) {
    let (_, &mut low, above) = values.select_nth_unstable_by(rank, &cmp);
    let high = above.iter().copied().min_by(&cmp).unwrap_or(low);
    (low, high)
}

/// [`select_two`] without reordering `values`, fast for ranks in a tail (percentiles 1 and 99):
/// a strided sample gives a threshold a little inside the tail, and only the values beyond it
/// are selected from. Exact whatever the sample: if the tail misses the rank, all values are.
fn order_statistics<T: Copy>(
    values: &[T],
    rank: usize,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> (T, T) {
    const SAMPLE: usize = 1024;
    let n = values.len();
    if n >= 16 * SAMPLE {
        let mut sample: Vec<T> = values.iter().copied().step_by(n / SAMPLE).collect();
        let m = sample.len();
        // About 2% of the sample (plus a few) outward from the rank, against sampling error.
        let (margin, at) = (m / 50 + 8, rank * m / n);
        if 2 * rank >= n && at > margin {
            let (_, &mut threshold, _) = sample.select_nth_unstable_by(at - margin, &cmp);
            let mut tail: Vec<T> = values
                .iter()
                .copied()
                .filter(|v| cmp(v, &threshold).is_ge())
                .collect();
            let below = n - tail.len();
            if below <= rank {
                return select_two(&mut tail, rank - below, cmp);
            }
        } else if 2 * rank < n && at + margin < m {
            let (_, &mut threshold, _) = sample.select_nth_unstable_by(at + margin, &cmp);
            let mut tail: Vec<T> = values
                .iter()
                .copied()
                .filter(|v| cmp(v, &threshold).is_le())
                .collect();
            if tail.len() > rank + 1 {
                return select_two(&mut tail, rank, cmp);
            }
        }
    }
    select_two(&mut values.to_vec(), rank, cmp)
}

/// `numpy.percentile(values, q)` (method "linear"); NaN when empty.
pub fn percentile(values: &[f32], q: f64) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let (lower, fraction) = percentile_position(values.len(), q);
    let (low, high) = order_statistics(values, lower, f32::total_cmp);
    lerp(f64::from(low), f64::from(high), fraction) as f32
}

/// The `q`-th percentile (linear interpolation) of a histogram of `total` uint8 values.
fn histogram_percentile(counts: &[u64; 256], total: u64, q: f64) -> f32 {
    let position = q / 100.0 * (total - 1) as f64;
    let lower = position.floor() as u64;
    let upper = (lower + 1).min(total - 1);
    // The order statistic of rank r is the number of bins whose cumulative count is <= r.
    let rank_value = |rank: u64| {
        let mut cumulative = 0;
        counts
            .iter()
            .take_while(|&&c| {
                cumulative += c;
                cumulative <= rank
            })
            .count() as f32
    };
    let (low, high) = (rank_value(lower), rank_value(upper));
    low + (high - low) * (position - lower as f64) as f32
}

// ------------------------------------------------------------------------------ Reinhard

/// Settings of a Reinhard variant (the constants live in `jaxwsi.norm.reinhard`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReinhardOptions {
    /// Scale each image so this percentile of its values becomes 255 first (`reinhard`).
    pub brightness_percentile: Option<f64>,
    /// Statistics over pixels with `L*/100 < threshold` only; other pixels are kept as they are
    /// (`reinhard_mask`).
    pub mask_threshold: Option<f32>,
    /// Floor of a channel's standard deviation.
    pub min_std: f32,
    /// With a mask, images with fewer tissue pixels than this are returned unchanged.
    pub min_tissue_pixels: usize,
}

/// Per-image target L*a*b* means and standard deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabTarget {
    pub means: [f32; 3],
    pub stds: [f32; 3],
}

/// Sums over the (masked) pixels of a band, in f64.
#[derive(Debug, Clone, Copy, Default)]
struct LabSums {
    count: u64,
    sum: [f64; 3],
    squares: [f64; 3],
}

impl LabSums {
    fn add(&mut self, other: &LabSums) {
        self.count += other.count;
        for c in 0..3 {
            self.sum[c] += other.sum[c];
            self.squares[c] += other.squares[c];
        }
    }
}

/// The uint8 → linear-light table of one image, composed with brightness standardization.
fn image_linear_table(image: &[u8], options: &ReinhardOptions, tables: &LabTables) -> [f32; 256] {
    let Some(q) = options.brightness_percentile else {
        return tables.linear_of_uint8;
    };
    let counts = image
        .par_chunks(4096)
        .map(|chunk| {
            let mut counts = [0u64; 256];
            for &v in chunk {
                counts[v as usize] += 1;
            }
            counts
        })
        .reduce(
            || [0u64; 256],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let level = histogram_percentile(&counts, image.len() as u64, q);
    let scale = 255.0 / level.max(1.0);
    std::array::from_fn(|v| tables.linear_of_uint8[to_uint8(v as f32 * scale) as usize])
}

/// Pixels converted together channel by channel (structure of arrays), so the arithmetic
/// vectorizes; the last block of a band is partly unused.
const BLOCK: usize = 64;

/// One block of pixels, channel-planar: `block[channel][pixel]`.
type Block = [[f32; BLOCK]; 3];

/// `linear @ m` for a block of row vectors (sums in index order, as [`row_times`]).
#[inline(always)]
fn block_times(v: &Block, m: &[[f32; 3]; 3]) -> Block {
    let mut out = [[0.0f32; BLOCK]; 3];
    for (j, channel) in out.iter_mut().enumerate() {
        for (i, value) in channel.iter_mut().enumerate() {
            *value = v[0][i] * m[0][j] + v[1][i] * m[1][j] + v[2][i] * m[2][j];
        }
    }
    out
}

/// [`lab_from_linear`] of a block.
#[inline(always)]
fn lab_block(linear: &Block, tables: &LabTables) -> Block {
    let mut f = block_times(linear, &tables.rgb_to_xyz_white);
    for value in f.as_flattened_mut() {
        let v = *value;
        *value = if v > (DELTA * DELTA * DELTA) as f32 {
            cbrt_positive(v)
        } else {
            v / (3.0 * (DELTA * DELTA)) as f32 + (4.0 / 29.0) as f32
        };
    }
    let mut lab = [[0.0f32; BLOCK]; 3];
    for i in 0..BLOCK {
        lab[0][i] = 116.0 * f[1][i] - 16.0;
        lab[1][i] = 500.0 * (f[0][i] - f[1][i]);
        lab[2][i] = 200.0 * (f[1][i] - f[2][i]);
    }
    lab
}

/// [`linear_from_lab`] of a block.
#[inline(always)]
fn linear_block(lab: &Block, tables: &LabTables) -> Block {
    let mut f = [[0.0f32; BLOCK]; 3];
    for i in 0..BLOCK {
        let fy = (lab[0][i] + 16.0) / 116.0;
        f[0][i] = fy + lab[1][i] / 500.0;
        f[1][i] = fy;
        f[2][i] = fy - lab[2][i] / 200.0;
    }
    for value in f.as_flattened_mut() {
        let v = *value;
        *value = if v > DELTA as f32 {
            v * v * v
        } else {
            (3.0 * (DELTA * DELTA)) as f32 * (v - (4.0 / 29.0) as f32)
        };
    }
    block_times(&f, &tables.xyz_white_to_rgb)
}

/// The pixels of one band of an image and its L*a*b* planes.
struct LabBand<'a> {
    pixels: &'a [u8],
    planes: [&'a mut [f32]; 3],
}

/// Writes the L*a*b* values of a band (pixels through `linear`) and sums its tissue pixels.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // blocks are indexed [channel][pixel]
fn lab_band_generic(
    band: LabBand<'_>,
    linear: &[f32; 256],
    threshold: Option<f32>,
    tables: &LabTables,
) -> LabSums {
    let LabBand { pixels, planes } = band;
    let mut sums = LabSums::default();
    for (index, chunk) in pixels.chunks(BLOCK * 3).enumerate() {
        let n = chunk.len() / 3;
        let mut block = [[0.0f32; BLOCK]; 3];
        for (i, rgb) in chunk.chunks_exact(3).enumerate() {
            for c in 0..3 {
                block[c][i] = linear[rgb[c] as usize];
            }
        }
        let lab = lab_block(&block, tables);
        let start = index * BLOCK;
        for c in 0..3 {
            planes[c][start..start + n].copy_from_slice(&lab[c][..n]);
        }
        for i in 0..n {
            if threshold.is_none_or(|t| lab[0][i] / 100.0 < t) {
                sums.count += 1;
                for c in 0..3 {
                    let x = f64::from(lab[c][i]);
                    sums.sum[c] += x;
                    sums.squares[c] += x * x;
                }
            }
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lab_band_avx2(
    band: LabBand<'_>,
    linear: &[f32; 256],
    threshold: Option<f32>,
    tables: &LabTables,
) -> LabSums {
    lab_band_generic(band, linear, threshold, tables)
}

/// [`lab_band_generic`], compiled for AVX2 where the CPU has it (the same IEEE operations, so
/// the same results, only more of them at once).
fn lab_band(
    band: LabBand<'_>,
    linear: &[f32; 256],
    threshold: Option<f32>,
    tables: &LabTables,
) -> LabSums {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { lab_band_avx2(band, linear, threshold, tables) };
    }
    lab_band_generic(band, linear, threshold, tables)
}

/// How a band's L*a*b* values move: `(x - means) * scale + target`, per channel.
#[derive(Debug, Clone, Copy)]
struct LabMove {
    means: [f32; 3],
    scale: [f32; 3],
    target: [f32; 3],
    /// Pixels with `L*/100 >= threshold` are copied from the input.
    threshold: Option<f32>,
}

/// Writes the moved L*a*b* values of a band as uint8 sRGB into `out`.
#[inline(always)]
fn moved_band_generic(
    lab: [&[f32]; 3],
    pixels: &[u8],
    out: &mut [u8],
    moves: &LabMove,
    tables: &LabTables,
) {
    for (index, (out, pixels)) in out
        .chunks_mut(BLOCK * 3)
        .zip(pixels.chunks(BLOCK * 3))
        .enumerate()
    {
        let n = out.len() / 3;
        let start = index * BLOCK;
        let mut block = [[0.0f32; BLOCK]; 3];
        for c in 0..3 {
            block[c][..n].copy_from_slice(&lab[c][start..start + n]);
        }
        let mut moved = [[0.0f32; BLOCK]; 3];
        for c in 0..3 {
            for i in 0..BLOCK {
                moved[c][i] = (block[c][i] - moves.means[c]) * moves.scale[c] + moves.target[c];
            }
        }
        let linear = linear_block(&moved, tables);
        let mut steps = [[0i32; BLOCK]; 3];
        for (step, &v) in steps
            .as_flattened_mut()
            .iter_mut()
            .zip(linear.as_flattened())
        {
            *step = (v * UINT8_STEPS as f32 + 0.5).clamp(0.0, UINT8_STEPS as f32) as i32;
        }
        for i in 0..n {
            let keep = moves.threshold.is_some_and(|t| block[0][i] / 100.0 >= t);
            for c in 0..3 {
                out[3 * i + c] = if keep {
                    pixels[3 * i + c]
                } else {
                    tables.uint8_of_linear[steps[c][i] as usize]
                };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn moved_band_avx2(
    lab: [&[f32]; 3],
    pixels: &[u8],
    out: &mut [u8],
    moves: &LabMove,
    tables: &LabTables,
) {
    moved_band_generic(lab, pixels, out, moves, tables)
}

/// [`moved_band_generic`], compiled for AVX2 where the CPU has it (see [`lab_band`]).
fn moved_band(
    lab: [&[f32]; 3],
    pixels: &[u8],
    out: &mut [u8],
    moves: &LabMove,
    tables: &LabTables,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { moved_band_avx2(lab, pixels, out, moves, tables) };
    }
    moved_band_generic(lab, pixels, out, moves, tables)
}

/// Reinhard normalization of one image into `out`.
fn reinhard_image(
    image: &[u8],
    out: &mut [u8],
    shape: BatchShape,
    target: &LabTarget,
    options: &ReinhardOptions,
) {
    let tables = lab_tables();
    let linear = image_linear_table(image, options, tables);
    let pixels = shape.pixels();
    let band_pixels = BAND_ROWS * shape.width;
    // L*a*b* planes [3][pixels], in bands of rows.
    let mut lab = vec![0.0f32; 3 * pixels];
    let (l_plane, rest) = lab.split_at_mut(pixels);
    let (a_plane, b_plane) = rest.split_at_mut(pixels);
    let band_sums: Vec<LabSums> = image
        .par_chunks(shape.band_bytes())
        .zip(l_plane.par_chunks_mut(band_pixels))
        .zip(a_plane.par_chunks_mut(band_pixels))
        .zip(b_plane.par_chunks_mut(band_pixels))
        .map(|(((pixels, l), a), b)| {
            let band = LabBand {
                pixels,
                planes: [l, a, b],
            };
            lab_band(band, &linear, options.mask_threshold, tables)
        })
        .collect();
    let mut sums = LabSums::default();
    band_sums.iter().for_each(|band| sums.add(band));

    if options.mask_threshold.is_some() && (sums.count as usize) < options.min_tissue_pixels {
        out.copy_from_slice(image);
        return;
    }
    let count = sums.count.max(1) as f64;
    let mut moves = LabMove {
        means: [0.0; 3],
        scale: [0.0; 3],
        target: target.means,
        threshold: options.mask_threshold,
    };
    for c in 0..3 {
        let mean = sums.sum[c] / count;
        let variance = (sums.squares[c] / count - mean * mean).max(0.0);
        moves.means[c] = mean as f32;
        moves.scale[c] = target.stds[c] / (variance.sqrt() as f32).max(options.min_std);
    }
    out.par_chunks_mut(shape.band_bytes())
        .zip(image.par_chunks(shape.band_bytes()))
        .zip(l_plane.par_chunks(band_pixels))
        .zip(a_plane.par_chunks(band_pixels))
        .zip(b_plane.par_chunks(band_pixels))
        .for_each(|((((out, pixels), l), a), b)| {
            moved_band([l, a, b], pixels, out, &moves, tables)
        });
}

/// Reinhard normalization of a batch `images` into `out` (same shape), one target per image.
pub fn reinhard(
    images: &[u8],
    shape: BatchShape,
    targets: &[LabTarget],
    options: &ReinhardOptions,
    out: &mut [u8],
) -> Result<(), StainError> {
    shape.check("reinhard images", images.len())?;
    shape.check("reinhard output", out.len())?;
    check_count("reinhard targets", targets.len(), shape.batch)?;
    images
        .par_chunks(shape.image_bytes())
        .zip(out.par_chunks_mut(shape.image_bytes()))
        .zip(targets)
        .for_each(|((image, out), target)| reinhard_image(image, out, shape, target, options));
    Ok(())
}

// ------------------------------------------------------------------------------ Macenko

/// Optical density `-ln((v + 1) / 256)` of each uint8 value (`jaxwsi.norm.color.optical_density`).
fn density_table() -> &'static [f32; 256] {
    static TABLE: OnceLock<[f32; 256]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|v| (-((v as f64 + 1.0) / 256.0).ln()) as f32))
}

#[inline(always)]
fn density_of(rgb: &[u8], table: &[f32; 256]) -> [f32; 3] {
    [
        table[rgb[0] as usize],
        table[rgb[1] as usize],
        table[rgb[2] as usize],
    ]
}

#[inline(always)]
fn is_dense(density: &[f32; 3], threshold: f32) -> bool {
    density.iter().all(|&d| d >= threshold)
}

/// Sample covariance of the optical density over an image's tissue pixels, and their count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TissueCovariance {
    /// `[3, 3]`, divided by `max(count - 1, 1)`; zero without tissue.
    pub covariance: [[f64; 3]; 3],
    /// Pixels whose every channel has optical density >= the threshold.
    pub count: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct DensitySums {
    count: u64,
    sum: [f64; 3],
    products: [[f64; 3]; 3],
}

/// Per image: covariance of the optical density over pixels with every channel >= `threshold`.
pub fn od_tissue_covariance(
    images: &[u8],
    shape: BatchShape,
    threshold: f32,
) -> Result<Vec<TissueCovariance>, StainError> {
    shape.check("optical density images", images.len())?;
    let table = density_table();
    Ok(images
        .par_chunks(shape.image_bytes())
        .map(|image| {
            let bands: Vec<DensitySums> = image
                .par_chunks(shape.band_bytes())
                .map(|pixels| {
                    let mut sums = DensitySums::default();
                    for rgb in pixels.chunks_exact(3) {
                        let d = density_of(rgb, table);
                        if !is_dense(&d, threshold) {
                            continue;
                        }
                        sums.count += 1;
                        let d = d.map(f64::from);
                        for i in 0..3 {
                            sums.sum[i] += d[i];
                            for j in i..3 {
                                sums.products[i][j] += d[i] * d[j];
                            }
                        }
                    }
                    sums
                })
                .collect();
            let mut total = DensitySums::default();
            for band in &bands {
                total.count += band.count;
                for i in 0..3 {
                    total.sum[i] += band.sum[i];
                    for j in i..3 {
                        total.products[i][j] += band.products[i][j];
                    }
                }
            }
            let n = total.count as f64;
            let divisor = (n - 1.0).max(1.0);
            // Products are summed for j >= i only; the covariance is symmetric.
            let covariance = std::array::from_fn(|i| {
                std::array::from_fn(|j| {
                    let (i, j) = (i.min(j), i.max(j));
                    if total.count == 0 {
                        0.0
                    } else {
                        (total.products[i][j] - total.sum[i] * total.sum[j] / n) / divisor
                    }
                })
            });
            TissueCovariance {
                covariance,
                count: total.count,
            }
        })
        .collect())
}

/// A key that orders points of the plane as their angle `atan2(y, x)` in (-π, π] does, without
/// computing it: `d = y / (|x| + |y|)` (monotone in the angle) on the right half-plane, `2 - d`
/// above and `-2 - d` below on the left. Selecting by it costs a division, not an `atan2`.
#[inline(always)]
fn angle_order_key(x: f32, y: f32) -> f32 {
    let sum = x.abs() + y.abs();
    let d = if sum > 0.0 { y / sum } else { 0.0 };
    if x >= 0.0 {
        d
    } else if y.is_sign_negative() {
        -2.0 - d
    } else {
        2.0 - d
    }
}

/// `key`'s bits as an unsigned integer in the same order as the float, above a pixel index.
#[inline(always)]
fn sortable_entry(key: f32, index: usize) -> u64 {
    let bits = key.to_bits();
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    };
    (u64::from(ordered) << 32) | index as u64
}

/// Per image: percentiles `qs` (numpy's linear interpolation) of the angle
/// `atan2(od @ plane[:, 1], od @ plane[:, 0])` over tissue pixels (every channel's optical
/// density >= `threshold`); NaN without tissue. Pixels are ordered by [`angle_order_key`] and
/// `atan2` is taken of the two order statistics each percentile needs.
pub fn od_angle_percentiles(
    images: &[u8],
    shape: BatchShape,
    planes: &[[[f32; 2]; 3]],
    threshold: f32,
    qs: &[f64],
) -> Result<Vec<Vec<f32>>, StainError> {
    shape.check("optical density images", images.len())?;
    check_count("principal planes", planes.len(), shape.batch)?;
    if u32::try_from(shape.pixels()).is_err() {
        return Err(StainError(format!(
            "angle percentiles: images of {} pixels are too large (at most 2^32 - 1)",
            shape.pixels()
        )));
    }
    let table = density_table();
    let band_pixels = BAND_ROWS * shape.width;
    Ok(images
        .par_chunks(shape.image_bytes())
        .zip(planes)
        .map(|(image, plane)| {
            let projected = |rgb: &[u8]| row_times(density_of(rgb, table), plane);
            let bands: Vec<Vec<u64>> = image
                .par_chunks(shape.band_bytes())
                .enumerate()
                .map(|(band, pixels)| {
                    let mut entries = Vec::with_capacity(band_pixels);
                    for (i, rgb) in pixels.chunks_exact(3).enumerate() {
                        if is_dense(&density_of(rgb, table), threshold) {
                            let [x, y] = projected(rgb);
                            let key = angle_order_key(x, y);
                            entries.push(sortable_entry(key, band * band_pixels + i));
                        }
                    }
                    entries
                })
                .collect();
            let entries = bands.concat();
            let angle_of = |entry: u64| {
                let index = (entry & 0xffff_ffff) as usize;
                let [x, y] = projected(&image[3 * index..3 * index + 3]);
                y.atan2(x)
            };
            qs.iter()
                .map(|&q| {
                    if entries.is_empty() {
                        return f32::NAN;
                    }
                    let (lower, fraction) = percentile_position(entries.len(), q);
                    let (low, high) = order_statistics(&entries, lower, u64::cmp);
                    let (low, high) = (f64::from(angle_of(low)), f64::from(angle_of(high)));
                    lerp(low, high, fraction) as f32
                })
                .collect()
        })
        .collect())
}

/// Per-image inputs of [`od_reconstruct`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StainTarget {
    /// Pseudo-inverse `[2, 3]` of the image's own stain matrix: concentrations = `od @ inverse.T`.
    pub inverse: [[f32; 3]; 2],
    /// Target stain matrix `[3, 2]`: rebuilt optical density = `concentrations @ stains.T`.
    pub stains: [[f32; 2]; 3],
    /// Target value of the concentrations' percentile, per stain.
    pub max_concentrations: [f32; 2],
    /// False: the image is copied unchanged (too little tissue to estimate its stains).
    pub normalize: bool,
}

/// Normalizes each image's stain concentrations (scaled so their `q`-th percentile over all
/// pixels meets the target's) and rebuilds it with the target stains, into `out`.
pub fn od_reconstruct(
    images: &[u8],
    shape: BatchShape,
    targets: &[StainTarget],
    q: f64,
    out: &mut [u8],
) -> Result<(), StainError> {
    shape.check("optical density images", images.len())?;
    shape.check("optical density output", out.len())?;
    check_count("stain targets", targets.len(), shape.batch)?;
    let table = density_table();
    let pixels = shape.pixels();
    images
        .par_chunks(shape.image_bytes())
        .zip(out.par_chunks_mut(shape.image_bytes()))
        .zip(targets)
        .for_each(|((image, out), target)| {
            if !target.normalize {
                out.copy_from_slice(image);
                return;
            }
            let inverse_t: [[f32; 2]; 3] =
                std::array::from_fn(|j| [target.inverse[0][j], target.inverse[1][j]]);
            // Concentrations as two planes [2][pixels], so each stain's percentile selects alone.
            let mut planes = vec![0.0f32; 2 * pixels];
            let (first, second) = planes.split_at_mut(pixels);
            let band_pixels = BAND_ROWS * shape.width;
            image
                .par_chunks(shape.band_bytes())
                .zip(first.par_chunks_mut(band_pixels))
                .zip(second.par_chunks_mut(band_pixels))
                .for_each(|((pixels, first), second)| {
                    for ((rgb, a), b) in pixels.chunks_exact(3).zip(first).zip(second) {
                        let c = row_times(density_of(rgb, table), &inverse_t);
                        (*a, *b) = (c[0], c[1]);
                    }
                });
            let (top_first, top_second) =
                rayon::join(|| percentile(first, q), || percentile(second, q));
            let scale = [
                target.max_concentrations[0] / top_first.max(1e-6),
                target.max_concentrations[1] / top_second.max(1e-6),
            ];
            let stains_t: [[f32; 3]; 2] =
                std::array::from_fn(|k| std::array::from_fn(|j| target.stains[j][k]));
            out.par_chunks_mut(shape.band_bytes())
                .zip(first.par_chunks(band_pixels))
                .zip(second.par_chunks(band_pixels))
                .for_each(|((out, first), second)| {
                    rebuild_band([first, second], out, scale, &stains_t)
                });
        });
    Ok(())
}

/// e^x in f32 arithmetic, vectorizable (Cephes `expf`): `x = k ln 2 + r` with |r| <= ln 2 / 2
/// (ln 2 split in two for an exact reduction), a degree-6 polynomial of e^r, and 2^k from the
/// exponent bits. Within 2 ulp of the libm `expf`; numpy's own SIMD `exp` differs from libm by as
/// much, so this changes no more pixels than numpy's choice of `exp` does.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
                                     // Beyond these, e^x is 0 or infinite in f32; 2^k stays a normal float in between.
    let x = x.clamp(-87.0, 88.5);
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let k = shifted - SHIFT;
    let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let mut polynomial = 1.987_569_1e-4;
    for coefficient in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        polynomial = polynomial * r + coefficient;
    }
    let e_to_r = polynomial * (r * r) + r + 1.0;
    // The low bits of `shifted` hold k; k + 127 in the exponent field is 2^k.
    let two_to_k = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    e_to_r * two_to_k
}

/// Rebuilds a band's pixels from its concentration planes: `(c * scale) @ stains_t`, then
/// `256 e^-od - 1` rounded to uint8 (`color.from_optical_density`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // blocks are indexed [channel][pixel]
fn rebuild_band_generic(
    concentrations: [&[f32]; 2],
    out: &mut [u8],
    scale: [f32; 2],
    stains_t: &[[f32; 3]; 2],
) {
    for (index, out) in out.chunks_mut(BLOCK * 3).enumerate() {
        let n = out.len() / 3;
        let start = index * BLOCK;
        let mut scaled = [[0.0f32; BLOCK]; 2];
        for k in 0..2 {
            for (value, &c) in scaled[k]
                .iter_mut()
                .zip(&concentrations[k][start..start + n])
            {
                *value = c * scale[k];
            }
        }
        let mut rebuilt = [[0.0f32; BLOCK]; 3];
        for j in 0..3 {
            for i in 0..BLOCK {
                let density = scaled[0][i] * stains_t[0][j] + scaled[1][i] * stains_t[1][j];
                rebuilt[j][i] = 256.0 * exp_f32(-density) - 1.0;
            }
        }
        for i in 0..n {
            for c in 0..3 {
                out[3 * i + c] = to_uint8(rebuilt[c][i]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rebuild_band_avx2(
    concentrations: [&[f32]; 2],
    out: &mut [u8],
    scale: [f32; 2],
    stains_t: &[[f32; 3]; 2],
) {
    rebuild_band_generic(concentrations, out, scale, stains_t)
}

/// [`rebuild_band_generic`], compiled for AVX2 where the CPU has it (see [`lab_band`]).
fn rebuild_band(
    concentrations: [&[f32]; 2],
    out: &mut [u8],
    scale: [f32; 2],
    stains_t: &[[f32; 3]; 2],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { rebuild_band_avx2(concentrations, out, scale, stains_t) };
    }
    rebuild_band_generic(concentrations, out, scale, stains_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_of_known_colours_matches_the_cie_values() {
        // Reference values from scikit-image's rgb2lab (D65).
        let white = lab_of_pixel([255, 255, 255]);
        assert!((white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 1e-2 && white[2].abs() < 1e-2);
        let red = lab_of_pixel([255, 0, 0]);
        for (got, want) in red.iter().zip([53.24059, 80.09231, 67.20275]) {
            assert!((got - want).abs() < 2e-3, "{red:?}");
        }
        let green = lab_of_pixel([30, 200, 90]);
        for (got, want) in green.iter().zip([71.091_14, -63.664_82, 43.261_1]) {
            assert!((got - want).abs() < 2e-3, "{green:?}");
        }
        assert!(lab_of_pixel([0, 0, 0]).iter().all(|v| v.abs() < 1e-6));
    }

    #[test]
    fn inlined_cbrt_and_rounding_equal_the_library_functions() {
        // Every 997th f32 from 0.008 (below the L*a*b* threshold) to 1.2 (above white's XYZ).
        for x in (-86_000..=88_000).map(|i| i as f32 / 997.0) {
            let (got, want) = (exp_f32(x), x.exp());
            assert!(
                got.to_bits().abs_diff(want.to_bits()) <= 2,
                "exp({x}) = {got}, not {want}"
            );
        }
        // Where e^x is tiny, 256 e^x - 1 rounds to 0 all the same; where huge, it clips to 255.
        for x in [-1e30, -104.0, -88.0] {
            assert_eq!(to_uint8(256.0 * exp_f32(x) - 1.0), 0, "exp({x})");
        }
        for x in [88.0, 89.0, 1e30, f32::INFINITY] {
            assert!(exp_f32(x) > 1e38, "exp({x})");
        }
        assert!(exp_f32(f32::NAN).is_nan());
        for bits in (0.008f32.to_bits()..1.2f32.to_bits()).step_by(997) {
            let x = f32::from_bits(bits);
            let (got, want) = (cbrt_positive(x), x.cbrt());
            assert!(
                got.to_bits().abs_diff(want.to_bits()) <= 1,
                "cbrt({x}) = {got}, not {want}"
            );
        }
        for v in (-2000..=300_000).map(|i| i as f32 / 1000.0) {
            let want = v.round_ties_even().clamp(0.0, 255.0) as u8;
            assert_eq!(to_uint8(v), want, "{v}");
        }
        for v in [-1e30, f32::NEG_INFINITY, 255.5, 256.5, 1e30, f32::INFINITY] {
            assert_eq!(
                to_uint8(v),
                v.round_ties_even().clamp(0.0, 255.0) as u8,
                "{v}"
            );
        }
    }

    #[test]
    fn angle_order_key_orders_points_as_atan2_does() {
        let mut state = 0x2545f4914f6cdd1du64;
        let mut points: Vec<(f32, f32)> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let x = ((state & 0xffff) as f32 - 32768.0) / 1000.0;
                let y = (((state >> 16) & 0xffff) as f32 - 32768.0) / 1000.0;
                (x, y)
            })
            .collect();
        points.extend([
            (1.0, 0.0),
            (0.0, 1.0),
            (-1.0, 0.0),
            (0.0, -1.0),
            (-1.0, -1e-30),
        ]);
        points.sort_by(|a, b| a.1.atan2(a.0).total_cmp(&b.1.atan2(b.0)));
        // Keys are f32 too: they may swap points whose angles differ by float rounding only.
        for pair in points.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (ka, kb) = (angle_order_key(a.0, a.1), angle_order_key(b.0, b.1));
            if ka > kb || sortable_entry(ka, 7) > sortable_entry(kb, 7) {
                let gap = b.1.atan2(b.0) - a.1.atan2(a.0);
                assert!(
                    gap < 1e-6,
                    "{a:?} -> {ka}, {b:?} -> {kb}: angles {gap} apart"
                );
            }
        }
    }

    #[test]
    fn lab_round_trip_returns_every_sampled_colour() {
        for r in (0..=255u8).step_by(5) {
            for g in (0..=255u8).step_by(3) {
                for b in (0..=255u8).step_by(7) {
                    let rgb = [r, g, b];
                    let back = pixel_of_lab(lab_of_pixel(rgb));
                    for c in 0..3 {
                        assert!(back[c].abs_diff(rgb[c]) <= 1, "{rgb:?} -> {back:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn percentile_matches_numpy_linear_interpolation() {
        // numpy.percentile([3, 1, 4, 1, 5], q) for q = 0, 10, 50, 99, 100.
        let expected = [1.0, 1.0, 3.0, 4.96, 5.0];
        for (q, want) in [0.0, 10.0, 50.0, 99.0, 100.0].into_iter().zip(expected) {
            let got = percentile(&[3.0, 1.0, 4.0, 1.0, 5.0], q);
            assert!((got - want).abs() < 1e-6, "q={q}: {got}");
        }
        assert!(percentile(&[], 50.0).is_nan());
        // Large inputs take the sampled-tail path: compare with a full sort, ties included.
        let mut state = 0x853c49e6748fea9bu64;
        for n in [20_000usize, 89_401] {
            let values: Vec<f32> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state % 5000) as f32 - 2500.0) / 7.0
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            for q in [0.0, 0.5, 1.0, 30.0, 50.0, 70.0, 99.0, 99.5, 100.0] {
                let (lower, fraction) = percentile_position(n, q);
                let upper = (lower + 1).min(n - 1);
                let want = lerp(f64::from(sorted[lower]), f64::from(sorted[upper]), fraction);
                assert_eq!(percentile(&values, q), want as f32, "n={n} q={q}");
            }
        }
        let mut counts = [0u64; 256];
        for v in [3, 1, 4, 1, 5] {
            counts[v] += 1;
        }
        assert!((histogram_percentile(&counts, 5, 99.0) - 4.96).abs() < 1e-5);
    }

    /// A deterministic pseudo-random batch (xorshift), tissue-coloured with a white corner.
    fn test_batch(shape: BatchShape) -> Vec<u8> {
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut pixels = Vec::with_capacity(shape.batch * shape.image_bytes());
        for _ in 0..shape.batch * shape.pixels() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let base = [150u8, 90, 170];
            for (c, &b) in base.iter().enumerate() {
                let noise = ((state >> (8 * c)) & 0x3f) as u8;
                pixels.push(if state % 5 == 0 {
                    245
                } else {
                    b.saturating_sub(noise)
                });
            }
        }
        pixels
    }

    #[test]
    fn reinhard_gives_the_target_statistics() {
        let shape = BatchShape {
            batch: 2,
            height: 20,
            width: 13,
        };
        let images = test_batch(shape);
        let target = LabTarget {
            means: [60.0, 20.0, -10.0],
            stds: [8.0, 5.0, 4.0],
        };
        let options = ReinhardOptions {
            brightness_percentile: None,
            mask_threshold: None,
            min_std: 0.1,
            min_tissue_pixels: 16,
        };
        let mut out = vec![0u8; images.len()];
        reinhard(&images, shape, &[target, target], &options, &mut out).unwrap();
        let labs: Vec<[f32; 3]> = out
            .chunks_exact(3)
            .map(|p| lab_of_pixel([p[0], p[1], p[2]]))
            .collect();
        for c in 0..3 {
            let n = labs.len() as f32;
            let mean = labs.iter().map(|l| l[c]).sum::<f32>() / n;
            let std = (labs.iter().map(|l| (l[c] - mean).powi(2)).sum::<f32>() / n).sqrt();
            assert!(
                (mean - target.means[c]).abs() < 0.5,
                "channel {c}: mean {mean}"
            );
            assert!(
                (std / target.stds[c] - 1.0).abs() < 0.05,
                "channel {c}: std {std}"
            );
        }
    }

    #[test]
    fn reinhard_mask_keeps_background_and_blank_images() {
        let shape = BatchShape {
            batch: 2,
            height: 10,
            width: 10,
        };
        let mut images = test_batch(shape);
        images[shape.image_bytes()..].fill(250); // second image: all background
        let target = LabTarget {
            means: [50.0, 30.0, -20.0],
            stds: [10.0, 6.0, 5.0],
        };
        let options = ReinhardOptions {
            brightness_percentile: Some(90.0),
            mask_threshold: Some(0.93),
            min_std: 0.1,
            min_tissue_pixels: 16,
        };
        let mut out = vec![0u8; images.len()];
        reinhard(&images, shape, &[target, target], &options, &mut out).unwrap();
        assert_eq!(out[shape.image_bytes()..], images[shape.image_bytes()..]);
        let first = &images[..shape.image_bytes()];
        let moved = out[..shape.image_bytes()]
            .chunks_exact(3)
            .zip(first.chunks_exact(3));
        let (mut kept, mut changed) = (0, 0);
        for (o, i) in moved {
            if i == [245, 245, 245] {
                assert_eq!(o, i);
                kept += 1;
            } else if o != i {
                changed += 1;
            }
        }
        assert!(kept > 0 && changed > 50, "kept {kept}, changed {changed}");
    }

    #[test]
    fn results_do_not_depend_on_thread_count_or_batch_neighbours() {
        let shape = BatchShape {
            batch: 3,
            height: 37,
            width: 11,
        };
        let images = test_batch(shape);
        let one = BatchShape { batch: 1, ..shape };
        let target = LabTarget {
            means: [60.0, 20.0, -10.0],
            stds: [8.0, 5.0, 4.0],
        };
        let options = ReinhardOptions {
            brightness_percentile: Some(90.0),
            mask_threshold: None,
            min_std: 0.1,
            min_tissue_pixels: 16,
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0u8; images.len()];
            pool.install(|| reinhard(&images, shape, &[target; 3], &options, &mut out))
                .unwrap();
            out
        };
        let together = run(1);
        assert_eq!(together, run(3));
        let macenko = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let plane = [[0.6f32, 0.1], [0.7, 0.9], [0.3, 0.2]];
            let target = StainTarget {
                inverse: [[1.2, 0.4, -0.3], [-0.5, 1.1, 0.2]],
                stains: plane,
                max_concentrations: [1.5, 1.0],
                normalize: true,
            };
            let mut out = vec![0u8; images.len()];
            pool.install(|| {
                let covariance = od_tissue_covariance(&images, shape, 0.15).unwrap();
                let angles =
                    od_angle_percentiles(&images, shape, &[plane; 3], 0.15, &[1.0, 99.0]).unwrap();
                od_reconstruct(&images, shape, &[target; 3], 99.0, &mut out).unwrap();
                (covariance, angles, out)
            })
        };
        assert_eq!(macenko(1), macenko(3));
        let last = &images[2 * one.image_bytes()..];
        let mut alone = vec![0u8; last.len()];
        reinhard(last, one, &[target], &options, &mut alone).unwrap();
        assert_eq!(alone, together[2 * one.image_bytes()..]);
    }

    #[test]
    fn macenko_passes_recover_a_known_stain_mixture() {
        // Pixels made from two stains with known unit OD vectors: the covariance's principal plane
        // contains both, the angle extremes find them, and reconstructing with the same stains and
        // maxima gives the image back.
        let h = [0.65f32, 0.70, 0.29];
        let e = [0.07f32, 0.99, 0.11];
        let norm = |v: [f32; 3]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n)
        };
        let (h, e) = (norm(h), norm(e));
        let shape = BatchShape {
            batch: 1,
            height: 16,
            width: 16,
        };
        let mut images = Vec::new();
        for i in 0..shape.pixels() {
            let (a, b) = (
                0.3 + 0.9 * (i % 16) as f32 / 15.0,
                0.2 + 0.8 * (i / 16) as f32 / 15.0,
            );
            for c in 0..3 {
                let od = a * h[c] + b * e[c];
                images.push((256.0 * (-od).exp() - 1.0).round() as u8);
            }
        }
        let stats = od_tissue_covariance(&images, shape, 0.15).unwrap();
        assert_eq!(stats.len(), 1);
        assert!(stats[0].count > 100);
        let cov = stats[0].covariance;
        assert!(cov[0][0] > 0.0 && (cov[0][1] - cov[1][0]).abs() < 1e-12);

        let stains = [[h[0], e[0]], [h[1], e[1]], [h[2], e[2]]];
        // Pseudo-inverse of [h e] from its 2x2 Gram matrix.
        let g = [
            [
                h.iter().map(|x| x * x).sum::<f32>(),
                h.iter().zip(e).map(|(x, y)| x * y).sum(),
            ],
            [0.0, e.iter().map(|x| x * x).sum::<f32>()],
        ];
        let det = g[0][0] * g[1][1] - g[0][1] * g[0][1];
        let inverse: [[f32; 3]; 2] = [
            std::array::from_fn(|c| (g[1][1] * h[c] - g[0][1] * e[c]) / det),
            std::array::from_fn(|c| (g[0][0] * e[c] - g[0][1] * h[c]) / det),
        ];
        // Concentration maxima at the 100th percentile are the largest a and b.
        let target = StainTarget {
            inverse,
            stains,
            max_concentrations: [1.2, 1.0],
            normalize: true,
        };
        let mut out = vec![0u8; images.len()];
        od_reconstruct(&images, shape, &[target], 100.0, &mut out).unwrap();
        let worst = out
            .iter()
            .zip(&images)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 2, "largest difference {worst}");

        // The angles of the pure-stain directions bound every pixel's angle in the stain plane.
        let plane = [[h[0], e[0]], [h[1], e[1]], [h[2], e[2]]];
        let extremes = od_angle_percentiles(&images, shape, &[plane], 0.15, &[0.0, 100.0]).unwrap();
        let overlap = h.iter().zip(e).map(|(x, y)| x * y).sum::<f32>();
        let (pure_h, pure_e) = (overlap.atan2(1.0), 1.0f32.atan2(overlap));
        assert!(
            pure_h < extremes[0][0] && extremes[0][0] < extremes[0][1],
            "{extremes:?}"
        );
        assert!(extremes[0][1] < pure_e, "{extremes:?} vs {pure_e}");
        let blank = od_angle_percentiles(
            &[255; 48],
            BatchShape {
                batch: 1,
                height: 4,
                width: 4,
            },
            &[plane],
            0.15,
            &[1.0],
        )
        .unwrap();
        assert!(blank[0][0].is_nan());
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let shape = BatchShape {
            batch: 2,
            height: 4,
            width: 4,
        };
        let options = ReinhardOptions {
            brightness_percentile: None,
            mask_threshold: None,
            min_std: 0.1,
            min_tissue_pixels: 16,
        };
        let target = LabTarget {
            means: [0.0; 3],
            stds: [1.0; 3],
        };
        let mut out = vec![0u8; 96];
        let short = reinhard(&[0; 95], shape, &[target; 2], &options, &mut out).unwrap_err();
        assert!(short.0.contains("95 bytes"), "{short}");
        let count = reinhard(&[0; 96], shape, &[target], &options, &mut out).unwrap_err();
        assert!(count.0.contains("1 values for a batch of 2"), "{count}");
        assert!(od_tissue_covariance(&[], BatchShape { batch: 0, ..shape }, 0.15).is_err());
    }
}
