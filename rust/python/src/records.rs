//! Bindings for reading, writing, verifying and indexing TFRecord files.
//!
//! Each call releases the GIL around file I/O and scanning; Python objects are built afterwards.
//! Python-side conversions (e.g. `str` → `bytes`) live in `jaxwsi/io/records.py`.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Mutex;

use jaxwsi_core::error::Error;
use jaxwsi_core::example::{encode_example, parse_example, Feature};
use jaxwsi_core::framing::RecordWriter;
use jaxwsi_core::index::{index_matches, scan_files, scan_files_partial, FileIndex};
use jaxwsi_core::stream::FileRecords;
use jaxwsi_core::verify::verify_files;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::errors::{guarded, poisoned, to_py_err};

/// Builds the Python value of one feature: 1 bytes value → `bytes`, several → `list[bytes]`,
/// int64 → 1-D `np.int64` array, float → 1-D `np.float32` array.
fn feature_to_py<'py>(py: Python<'py>, feature: Feature<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match feature {
        Feature::Bytes(values) if values.len() == 1 => PyBytes::new(py, values[0]).into_any(),
        Feature::Bytes(values) => {
            let items = values.into_iter().map(|b| PyBytes::new(py, b));
            PyList::new(py, items)?.into_any()
        }
        Feature::Int64(values) => PyArray1::from_vec(py, values).into_any(),
        Feature::Float(values) => PyArray1::from_vec(py, values).into_any(),
    })
}

fn lock<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock().map_err(|_| poisoned("TFRecord reader"))
}

/// Iterator over `(offset, framed_length, features)` of a TFRecord file.
#[pyclass(module = "jaxwsi._native")]
pub struct RecordIterator {
    records: Mutex<FileRecords>,
}

#[pymethods]
impl RecordIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        // Read and verify with the GIL released, then decode from the reader's buffer.
        let more = py.detach(|| {
            guarded(|| {
                let mut records = lock(&self.records)?;
                let more = records.next_record().map_err(to_py_err)?.is_some();
                Ok(more)
            })
        })?;
        if !more {
            return Ok(None);
        }
        guarded(|| {
            let records = lock(&self.records)?;
            let Some(rec) = records.last_record() else {
                return Ok(None);
            };
            let example = parse_example(rec.data)
                .map_err(|e| to_py_err(e.shifted(rec.offset).with_path(records.path())))?;
            let dict = PyDict::new(py);
            for (key, feature) in example.features {
                dict.set_item(key, feature_to_py(py, feature)?)?;
            }
            let item = (rec.offset, rec.framed_len, dict);
            Ok(Some(item.into_pyobject(py)?))
        })
    }

    /// The detected compression: `"none"`, `"gzip"` or `"zlib"`.
    #[getter]
    fn compression(&self) -> PyResult<&'static str> {
        Ok(lock(&self.records)?.compression().name())
    }
}

/// Opens `path` for reading; `verify` checks both CRCs of every record.
#[pyfunction]
#[pyo3(signature = (path, verify = true))]
fn open_records(py: Python<'_>, path: PathBuf, verify: bool) -> PyResult<RecordIterator> {
    let records = py.detach(|| guarded(|| FileRecords::open(&path, verify).map_err(to_py_err)))?;
    Ok(RecordIterator {
        records: Mutex::new(records),
    })
}

/// Reads one feature given as `(key, kind, value)` with kind `bytes` (a list of bytes),
/// `int64` (a 1-D int64 array) or `float` (a 1-D float32 array).
fn encode_features(features: &Bound<'_, PyList>) -> PyResult<Vec<u8>> {
    let mut keys: Vec<String> = Vec::with_capacity(features.len());
    let mut bytes_values: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut int_values: Vec<PyReadonlyArray1<'_, i64>> = Vec::new();
    let mut float_values: Vec<PyReadonlyArray1<'_, f32>> = Vec::new();
    let mut layout: Vec<(u8, usize)> = Vec::with_capacity(features.len());
    for item in features.iter() {
        let (key, kind, value): (String, String, Bound<'_, PyAny>) = item.extract()?;
        match kind.as_str() {
            "bytes" => {
                let list: Vec<Vec<u8>> = value.extract()?;
                layout.push((0, bytes_values.len()));
                bytes_values.push(list);
            }
            "int64" => {
                layout.push((1, int_values.len()));
                int_values.push(value.extract()?);
            }
            "float" => {
                layout.push((2, float_values.len()));
                float_values.push(value.extract()?);
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "feature {key:?}: unknown kind {other:?}"
                )))
            }
        }
        keys.push(key);
    }
    let mut feats: Vec<(&str, Feature<'_>)> = Vec::with_capacity(keys.len());
    for (key, (kind, i)) in keys.iter().zip(layout) {
        let feature = match kind {
            0 => Feature::Bytes(bytes_values[i].iter().map(Vec::as_slice).collect()),
            1 => Feature::Int64(int_values[i].as_array().iter().copied().collect()),
            _ => Feature::Float(float_values[i].as_array().iter().copied().collect()),
        };
        feats.push((key.as_str(), feature));
    }
    let mut out = Vec::new();
    encode_example(&feats, &mut out);
    Ok(out)
}

/// Serializes features (see `encode_features`) to a `tf.train.Example` message.
#[pyfunction]
fn encode_example_bytes<'py>(
    py: Python<'py>,
    features: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    let data = guarded(|| encode_features(features))?;
    Ok(PyBytes::new(py, &data))
}

/// Appends framed records to a file (the caller handles the temporary name and rename).
#[pyclass(module = "jaxwsi._native")]
pub struct RecordFileWriter {
    path: PathBuf,
    writer: Mutex<Option<RecordWriter<BufWriter<File>>>>,
}

impl RecordFileWriter {
    fn io_err(&self, e: &std::io::Error) -> PyErr {
        to_py_err(Error::io(e, Some(&self.path), 0))
    }
}

#[pymethods]
impl RecordFileWriter {
    /// Creates (truncates) `path` for writing.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let file = py.detach(|| File::create(&path));
        let file = file.map_err(|e| to_py_err(Error::io(&e, Some(&path), 0)))?;
        Ok(RecordFileWriter {
            writer: Mutex::new(Some(RecordWriter::new(BufWriter::with_capacity(
                1 << 20,
                file,
            )))),
            path,
        })
    }

    /// Writes one record holding `features` (a list of `(key, kind, value)`); returns its
    /// `(offset, framed_length)`.
    fn write_example(&self, py: Python<'_>, features: &Bound<'_, PyList>) -> PyResult<(u64, u64)> {
        let data = guarded(|| encode_features(features))?;
        self.write_bytes(py, &data)
    }

    /// Writes one record holding `data` as is; returns its `(offset, framed_length)`.
    fn write_record(&self, py: Python<'_>, data: &[u8]) -> PyResult<(u64, u64)> {
        self.write_bytes(py, data)
    }

    /// Flushes, fsyncs and closes the file. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(writer) = lock(&self.writer)?.take() else {
            return Ok(());
        };
        py.detach(|| {
            let file = writer
                .into_inner()
                .into_inner()
                .map_err(|e| e.into_error())?;
            file.sync_all()
        })
        .map_err(|e| self.io_err(&e))
    }
}

impl RecordFileWriter {
    fn write_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<(u64, u64)> {
        let mut guard = lock(&self.writer)?;
        let writer = guard
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("write to a closed TFRecord writer"))?;
        py.detach(|| writer.write_record(data))
            .map_err(|e| self.io_err(&e))
    }
}

fn index_to_py<'py>(py: Python<'py>, index: FileIndex) -> PyResult<Bound<'py, PyTuple>> {
    let n = index.records.len();
    let flat: Vec<i64> = index.records.into_iter().flatten().collect();
    let records = PyArray1::from_vec(py, flat).reshape([n, 2])?;
    let locations: Option<Bound<'py, PyArray2<i64>>> = match index.locations {
        Some(locs) => {
            let flat: Vec<i64> = locs.into_iter().flatten().collect();
            Some(PyArray1::from_vec(py, flat).reshape([n, 2])?)
        }
        None => None,
    };
    (records, locations).into_pyobject(py)
}

/// Scans files in parallel (GIL released). One entry per path: `(records [N,2], locations
/// [N,2] or None)`, or the exception (not raised) for a file that failed.
#[pyfunction]
#[pyo3(signature = (paths, with_locations = true))]
fn scan_indexes<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    with_locations: bool,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let results = py.detach(|| guarded(|| Ok(scan_files(&paths, with_locations))))?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(index) => Ok(index_to_py(py, index)?.into_any()),
            Err(e) => Ok(to_py_err(e).into_value(py).into_bound(py).into_any()),
        })
        .collect()
}

/// Like `scan_indexes`, but keeps what is readable: one `(records, locations, error)` per path,
/// where `records`/`locations` cover the records before the first bad one and `error` is `None`
/// or `(byte offset, exception)` of the bad record (offset 0 for a file that cannot be opened).
#[pyfunction]
#[pyo3(signature = (paths, with_locations = true))]
fn scan_indexes_partial<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    with_locations: bool,
) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let results = py.detach(|| guarded(|| Ok(scan_files_partial(&paths, with_locations))))?;
    results
        .into_iter()
        .map(|(index, error)| {
            let (records, locations) =
                index_to_py(py, index)?.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
            let error = error.map(|e| (e.offset, to_py_err(e).into_value(py)));
            (records, locations, error).into_pyobject(py)
        })
        .collect()
}

/// True when `records` (int64 [N,2] of offset, framed length) still describes the file at
/// `path`; see `jaxwsi_core::index::index_matches`.
#[pyfunction]
fn index_is_current(
    py: Python<'_>,
    path: PathBuf,
    records: PyReadonlyArray2<'_, i64>,
) -> PyResult<bool> {
    let view = records.as_array();
    if view.ncols() != 2 {
        return Err(PyValueError::new_err(format!(
            "index of {} has shape {:?}, expected [N, 2]",
            path.display(),
            view.shape()
        )));
    }
    let rows: Vec<[i64; 2]> = view.rows().into_iter().map(|r| [r[0], r[1]]).collect();
    py.detach(|| guarded(|| index_matches(&path, &rows).map_err(to_py_err)))
}

/// Verifies files in parallel (GIL released): reads every record, checks both CRCs and, with
/// `parse`, decodes every Example. One entry per path: `(records, bytes, compression)`, or the
/// exception (not raised) for a file that failed.
#[pyfunction]
#[pyo3(signature = (paths, parse = true))]
fn verify_paths<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    parse: bool,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let results = py.detach(|| guarded(|| Ok(verify_files(&paths, parse))))?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(s) => Ok((s.records, s.bytes, s.compression.name())
                .into_pyobject(py)?
                .into_any()),
            Err(e) => Ok(to_py_err(e).into_value(py).into_bound(py).into_any()),
        })
        .collect()
}

/// Registers the record functions and classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RecordIterator>()?;
    m.add_class::<RecordFileWriter>()?;
    m.add_function(wrap_pyfunction!(open_records, m)?)?;
    m.add_function(wrap_pyfunction!(encode_example_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(scan_indexes, m)?)?;
    m.add_function(wrap_pyfunction!(scan_indexes_partial, m)?)?;
    m.add_function(wrap_pyfunction!(verify_paths, m)?)?;
    m.add_function(wrap_pyfunction!(index_is_current, m)?)?;
    Ok(())
}
