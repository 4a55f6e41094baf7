//! Bindings for the stain-normalization kernels (`jaxwsi_core::stain`): C-contiguous numpy arrays
//! in, results written into a caller's `out` array or returned; the GIL is released while they run.
//! `jaxwsi.norm` calls these and checks shapes and dtypes first; errors here are `ValueError`.

use jaxwsi_core::stain::{
    self, BatchShape, LabTarget, ReinhardOptions, StainError, StainTarget, TissueCovariance,
};
use numpy::ndarray::{Array2, Array3, ArrayView, Dimension};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyReadonlyArray4, PyReadwriteArray4,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::guarded;

/// Per-image covariances `[B, 3, 3]` and tissue pixel counts `[B]`.
type CovariancesAndCounts<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray1<u64>>);

/// Runs a kernel, turning its error into `ValueError` and a panic into `InternalError` (a
/// `RuntimeError`; the one panic mapping of `errors::guarded`).
fn run_kernel<T>(f: impl FnOnce() -> Result<T, StainError>) -> PyResult<T> {
    guarded(|| f().map_err(|e| PyValueError::new_err(e.to_string())))
}

/// The batch shape of `images [B, H, W, 3]` and its pixels as one slice.
fn batch_of<'a>(images: &'a PyReadonlyArray4<'_, u8>) -> PyResult<(&'a [u8], BatchShape)> {
    let (batch, height, width, channels) = images.as_array().dim();
    if channels != 3 {
        return Err(PyValueError::new_err(format!(
            "images must be [B, H, W, 3], got [{batch}, {height}, {width}, {channels}]"
        )));
    }
    let pixels = images
        .as_slice()
        .map_err(|e| PyValueError::new_err(format!("images: {e}")))?;
    Ok((
        pixels,
        BatchShape {
            batch,
            height,
            width,
        },
    ))
}

/// Rows of a per-image parameter array `[B, ...]`, each flattened to `N` values.
fn rows<const N: usize, D: Dimension>(
    name: &str,
    values: ArrayView<'_, f32, D>,
    batch: usize,
) -> PyResult<Vec<[f32; N]>> {
    let shape = values.shape().to_vec();
    if shape.first() != Some(&batch) || shape[1..].iter().product::<usize>() != N {
        return Err(PyValueError::new_err(format!(
            "{name} must have {N} values per image for {batch} images, got shape {shape:?}"
        )));
    }
    let flat: Vec<f32> = values.iter().copied().collect();
    Ok(flat
        .chunks_exact(N)
        .map(|c| c.try_into().expect("chunks of N"))
        .collect())
}

/// Reinhard normalization of `images` toward per-image L*a*b* targets, written into `out`.
#[pyfunction]
#[pyo3(signature = (images, target_means, target_stds, out, *, brightness_percentile, mask_threshold, min_std, min_tissue_pixels))]
#[allow(clippy::too_many_arguments)]
fn reinhard_transform(
    py: Python<'_>,
    images: PyReadonlyArray4<'_, u8>,
    target_means: PyReadonlyArray2<'_, f32>,
    target_stds: PyReadonlyArray2<'_, f32>,
    mut out: PyReadwriteArray4<'_, u8>,
    brightness_percentile: Option<f64>,
    mask_threshold: Option<f32>,
    min_std: f32,
    min_tissue_pixels: usize,
) -> PyResult<()> {
    let (pixels, shape) = batch_of(&images)?;
    let means = rows::<3, _>("target_means", target_means.as_array(), shape.batch)?;
    let stds = rows::<3, _>("target_stds", target_stds.as_array(), shape.batch)?;
    let targets: Vec<LabTarget> = means
        .into_iter()
        .zip(stds)
        .map(|(means, stds)| LabTarget { means, stds })
        .collect();
    let options = ReinhardOptions {
        brightness_percentile,
        mask_threshold,
        min_std,
        min_tissue_pixels,
    };
    let out = out
        .as_slice_mut()
        .map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
    py.detach(|| run_kernel(|| stain::reinhard(pixels, shape, &targets, &options, out)))
}

/// Per image: the optical-density covariance `[B, 3, 3]` (float32) over tissue pixels (every
/// channel's density >= `threshold`) and the tissue pixel counts `[B]`.
#[pyfunction]
fn od_tissue_covariance<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    threshold: f32,
) -> PyResult<CovariancesAndCounts<'py>> {
    let (pixels, shape) = batch_of(&images)?;
    let stats: Vec<TissueCovariance> =
        py.detach(|| run_kernel(|| stain::od_tissue_covariance(pixels, shape, threshold)))?;
    let covariance = Array3::from_shape_fn((stats.len(), 3, 3), |(b, i, j)| {
        stats[b].covariance[i][j] as f32
    });
    let counts: Vec<u64> = stats.iter().map(|s| s.count).collect();
    Ok((
        PyArray3::from_owned_array(py, covariance),
        PyArray1::from_vec(py, counts),
    ))
}

/// Per image: percentiles `qs` `[B, len(qs)]` of the angle of tissue pixels' optical density
/// projected on `planes [B, 3, 2]`; NaN for an image without tissue.
#[pyfunction]
fn od_angle_percentiles<'py>(
    py: Python<'py>,
    images: PyReadonlyArray4<'py, u8>,
    planes: PyReadonlyArray3<'py, f32>,
    threshold: f32,
    qs: Vec<f64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (pixels, shape) = batch_of(&images)?;
    let planes: Vec<[[f32; 2]; 3]> = rows::<6, _>("planes", planes.as_array(), shape.batch)?
        .into_iter()
        .map(|v| [[v[0], v[1]], [v[2], v[3]], [v[4], v[5]]])
        .collect();
    let values = py.detach(|| {
        run_kernel(|| stain::od_angle_percentiles(pixels, shape, &planes, threshold, &qs))
    })?;
    let table = Array2::from_shape_fn((values.len(), qs.len()), |(b, k)| values[b][k]);
    Ok(PyArray2::from_owned_array(py, table))
}

/// Rebuilds `images` with target stains into `out`: concentrations `od @ inverses[b].T`, scaled so
/// their `q`-th percentile equals `max_concentrations[b]`, times `stains[b].T`; images whose
/// `normalize` flag is False are copied unchanged.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn od_reconstruct(
    py: Python<'_>,
    images: PyReadonlyArray4<'_, u8>,
    inverses: PyReadonlyArray3<'_, f32>,
    stains: PyReadonlyArray3<'_, f32>,
    max_concentrations: PyReadonlyArray2<'_, f32>,
    normalize: PyReadonlyArray1<'_, bool>,
    q: f64,
    mut out: PyReadwriteArray4<'_, u8>,
) -> PyResult<()> {
    let (pixels, shape) = batch_of(&images)?;
    let inverses = rows::<6, _>("inverses", inverses.as_array(), shape.batch)?;
    let stains = rows::<6, _>("stains", stains.as_array(), shape.batch)?;
    let tops = rows::<2, _>(
        "max_concentrations",
        max_concentrations.as_array(),
        shape.batch,
    )?;
    let normalize = normalize.as_array();
    if normalize.len() != shape.batch {
        return Err(PyValueError::new_err(format!(
            "normalize must have one flag per image ({}), got {}",
            shape.batch,
            normalize.len()
        )));
    }
    let targets: Vec<StainTarget> = (0..shape.batch)
        .map(|b| {
            let (i, s) = (inverses[b], stains[b]);
            StainTarget {
                inverse: [[i[0], i[1], i[2]], [i[3], i[4], i[5]]],
                stains: [[s[0], s[1]], [s[2], s[3]], [s[4], s[5]]],
                max_concentrations: tops[b],
                normalize: normalize[b],
            }
        })
        .collect();
    let out = out
        .as_slice_mut()
        .map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
    py.detach(|| run_kernel(|| stain::od_reconstruct(pixels, shape, &targets, q, out)))
}

/// Registers the stain kernels on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(reinhard_transform, m)?)?;
    m.add_function(wrap_pyfunction!(od_tissue_covariance, m)?)?;
    m.add_function(wrap_pyfunction!(od_angle_percentiles, m)?)?;
    m.add_function(wrap_pyfunction!(od_reconstruct, m)?)?;
    Ok(())
}
