//! Bindings for the interleaving loader: one call per batch, GIL released while reading and
//! decoding, pixels handed to numpy without a copy.
//!
//! Batch pixel buffers are pooled: a numpy array's memory is a Rust `Vec` owned by a
//! [`PooledBuffer`]; when Python frees the array, the `Vec` goes back to the pool and the next
//! batch decodes into its already-mapped pages (writing fresh pages is several times slower).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jaxwsi_core::loader::{Batch, Loader, LoaderConfig, LoaderError, OnError};
use jaxwsi_core::plan::{Item, PlanSpec, PlanState};
use numpy::ndarray::ArrayView4;
use numpy::{PyArray1, PyArray4, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::errors::{guarded, loader_err, poisoned};

/// Buffers kept for reuse; more than the few batches a pipeline holds at once is waste.
const MAX_POOLED_BUFFERS: usize = 8;

type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// Owner of a batch's pixels while numpy uses them; gives the memory back to the pool on drop.
#[pyclass(module = "jaxwsi._native", frozen)]
struct PooledBuffer {
    data: Vec<u8>,
    pool: Pool,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < MAX_POOLED_BUFFERS {
                pool.push(data);
            }
        }
    }
}

/// The loader options, read by attribute from a resolved `jaxwsi.io.LoaderSettings` (the one
/// place their defaults live); options only the Python side uses are not read here.
#[derive(FromPyObject)]
struct Settings {
    batch_size: usize,
    infinite: bool,
    shuffle: bool,
    seed: u64,
    rank: u64,
    num_replicas: u64,
    worker: u64,
    num_workers: u64,
    decode: bool,
    drop_remainder: bool,
    on_error: String,
    num_threads: usize,
}

impl Settings {
    fn on_error(&self) -> PyResult<OnError> {
        match self.on_error.as_str() {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            other => Err(PyValueError::new_err(format!(
                "on_error must be 'raise' or 'skip', not {other:?}"
            ))),
        }
    }
}

/// The native loader of one shard; `jaxwsi.io.Interleaver` wraps it.
#[pyclass(module = "jaxwsi._native")]
pub struct NativeLoader {
    loader: Mutex<Loader>,
    pool: Pool,
    decode: bool,
}

impl NativeLoader {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Loader>> {
        self.loader.lock().map_err(|_| poisoned("loader"))
    }

    /// Runs `f` on the loader with the GIL released, with a pooled pixel buffer.
    fn run(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Loader, &mut Vec<u8>) -> Result<Option<Batch>, LoaderError> + Send,
    ) -> PyResult<Option<(Batch, Vec<u8>)>> {
        let mut buffer = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let batch = py.detach(|| {
            guarded(|| {
                let mut loader = self.lock()?;
                f(&mut loader, &mut buffer).map_err(loader_err)
            })
        })?;
        Ok(batch.map(|b| (b, buffer)))
    }

    fn to_dict<'py>(
        &self,
        py: Python<'py>,
        batch: Batch,
        buffer: Vec<u8>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let n = batch.size;
        match batch.tile {
            Some(tile) if self.decode => {
                let owner = Bound::new(
                    py,
                    PooledBuffer {
                        data: buffer,
                        pool: self.pool.clone(),
                    },
                )?;
                let shape = (n, tile.height, tile.width, 3);
                let ptr = owner.get().data.as_ptr();
                // SAFETY: the view covers exactly `data` (n * H * W * 3 bytes, checked by the
                // core), and `owner` becomes the array's base object, so the memory outlives
                // the array; `data` is never touched again until `owner` is dropped.
                let image = unsafe {
                    let view = ArrayView4::from_shape_ptr(shape, ptr);
                    PyArray4::borrow_from_array(&view, owner.into_any())
                };
                out.set_item("image", image)?;
            }
            _ => {
                if self.decode {
                    // An empty batch (only possible for explicit loads): give the buffer back.
                    if let Ok(mut pool) = self.pool.lock() {
                        pool.push(buffer);
                    }
                    out.set_item("image", PyArray1::<u8>::zeros(py, 0, false))?;
                } else {
                    let items = batch.encoded.iter().map(|b| PyBytes::new(py, b));
                    out.set_item("image", PyList::new(py, items)?)?;
                }
            }
        }
        out.set_item("label_row", PyArray1::from_vec(py, batch.label_rows))?;
        out.set_item("slide", PyList::new(py, batch.slides)?)?;
        let flat: Vec<i64> = batch.locations.into_iter().flatten().collect();
        out.set_item("loc", PyArray1::from_vec(py, flat).reshape([n, 2])?)?;
        out.set_item("skipped", PyList::new(py, batch.skipped)?)?;
        Ok(out)
    }
}

#[pymethods]
impl NativeLoader {
    /// `records[f]` is file `f`'s index: int64 `[N, 2]` of (offset, framed length);
    /// `settings` a resolved `jaxwsi.io.LoaderSettings`.
    #[new]
    #[pyo3(signature = (paths, records, *, weights, clip, label_slides, settings))]
    fn new(
        paths: Vec<PathBuf>,
        records: Vec<PyReadonlyArray2<'_, i64>>,
        weights: Option<Vec<f64>>,
        clip: Option<Vec<u64>>,
        label_slides: Option<Vec<String>>,
        settings: Settings,
    ) -> PyResult<Self> {
        let records = records
            .iter()
            .zip(&paths)
            .map(|(r, path)| {
                let r = r.as_array();
                if r.ncols() != 2 || r.iter().any(|&v| v < 0) {
                    return Err(PyValueError::new_err(format!(
                        "index of {} must be non-negative int64 [N, 2] (offset, framed length)",
                        path.display()
                    )));
                }
                Ok(r.rows()
                    .into_iter()
                    .map(|row| [row[0] as u64, row[1] as u64])
                    .collect())
            })
            .collect::<PyResult<Vec<Vec<[u64; 2]>>>>()?;
        let label_rows = label_slides.map(|names| {
            names
                .into_iter()
                .enumerate()
                .map(|(i, name)| (name, i as u32))
                .collect::<HashMap<String, u32>>()
        });
        let s = &settings;
        let plan = PlanSpec {
            counts: records.iter().map(|r| r.len() as u64).collect(),
            weights,
            clip,
            seed: s.seed,
            shard: s.rank * s.num_workers + s.worker,
            num_shards: s.num_replicas * s.num_workers,
            infinite: s.infinite,
            shuffle: s.shuffle,
        };
        let config = LoaderConfig {
            paths,
            records,
            plan,
            batch_size: s.batch_size,
            drop_remainder: s.drop_remainder,
            decode: s.decode,
            label_rows,
            on_error: s.on_error()?,
            num_threads: s.num_threads,
        };
        let loader = Loader::new(config).map_err(loader_err)?;
        Ok(NativeLoader {
            loader: Mutex::new(loader),
            pool: Arc::new(Mutex::new(Vec::new())),
            decode: settings.decode,
        })
    }

    /// The next batch as a dict (`image`, `label_row`, `slide`, `loc`, `skipped`), or `None`
    /// at the end of a finite epoch.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        match self.run(py, |loader, buffer| loader.next_batch(buffer))? {
            Some((batch, buffer)) => Ok(Some(self.to_dict(py, batch, buffer)?)),
            None => Ok(None),
        }
    }

    /// Loads the given (file, record) pairs, in order, as one batch (random access).
    fn load<'py>(
        &self,
        py: Python<'py>,
        files: Vec<usize>,
        records: Vec<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if files.len() != records.len() {
            return Err(PyValueError::new_err("files and records differ in length"));
        }
        let items: Vec<Item> = files
            .into_iter()
            .zip(records)
            .map(|(file, record)| Item { file, record })
            .collect();
        let (batch, buffer) = self
            .run(py, |loader, buffer| loader.load(&items, buffer).map(Some))?
            .expect("load always returns a batch");
        self.to_dict(py, batch, buffer)
    }

    /// This shard's records as `(file, record)` pairs, file by file (clip applied).
    fn shard_items(&self) -> PyResult<(Vec<usize>, Vec<u64>)> {
        let loader = self.lock()?;
        let mut files = Vec::new();
        let mut records = Vec::new();
        for part in loader.parts() {
            files.extend(std::iter::repeat_n(part.file, part.records.len()));
            records.extend_from_slice(&part.records);
        }
        Ok((files, records))
    }

    /// `(epoch, step, draws per part)`.
    fn state(&self) -> PyResult<(u64, u64, Vec<u64>)> {
        let s = self.lock()?.state();
        Ok((s.epoch, s.step, s.draws))
    }

    fn set_state(&self, epoch: u64, step: u64, draws: Vec<u64>) -> PyResult<()> {
        let state = PlanState { epoch, step, draws };
        self.lock()?.set_state(&state).map_err(loader_err)
    }

    fn start_epoch(&self, epoch: u64) -> PyResult<()> {
        self.lock()?.start_epoch(epoch);
        Ok(())
    }

    #[getter]
    fn epoch(&self) -> PyResult<u64> {
        Ok(self.lock()?.epoch())
    }

    #[getter]
    fn records_per_epoch(&self) -> PyResult<u64> {
        Ok(self.lock()?.records_per_epoch())
    }

    #[getter]
    fn batches_per_epoch(&self) -> PyResult<u64> {
        Ok(self.lock()?.batches_per_epoch())
    }
}

/// Registers the loader classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeLoader>()?;
    Ok(())
}
