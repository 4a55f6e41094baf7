//! The Python face of the core errors: one mapping, shared by every binding (records, index,
//! loader, stain).
//!
//! Format problems raise `TFRecordError` (a `ValueError`); OS failures the matching `OSError`;
//! a Rust panic (a bug in jaxwsi, never bad input) `InternalError`, a `RuntimeError`, so an
//! `except ValueError` around bad input never hides a bug, and no panic aborts Python.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use jaxwsi_core::error::Error;
use jaxwsi_core::loader::LoaderError;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;

create_exception!(
    jaxwsi.io,
    TFRecordError,
    PyValueError,
    "A malformed TFRecord file or record; the message names the file and the byte offset."
);

create_exception!(
    jaxwsi.io,
    InternalError,
    PyRuntimeError,
    "A bug in jaxwsi's native code (a Rust panic), not a problem of the input; please report it."
);

/// Maps a core error to a Python exception: missing files, permissions and directories become
/// the matching `OSError` subclasses (with the path as `filename`), other I/O failures
/// `OSError`, and every format problem (framing, CRC, protobuf, corrupt GZIP/ZLIB stream)
/// [`TFRecordError`].
pub fn to_py_err(e: Error) -> PyErr {
    let filename = e
        .path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    match e.io_kind() {
        None => TFRecordError::new_err(e.to_string()),
        Some(io::ErrorKind::NotFound) => {
            PyFileNotFoundError::new_err((2, "No such file or directory", filename))
        }
        Some(io::ErrorKind::PermissionDenied) => {
            PyPermissionError::new_err((13, "Permission denied", filename))
        }
        Some(io::ErrorKind::IsADirectory) => {
            PyIsADirectoryError::new_err((21, "Is a directory", filename))
        }
        Some(_) => PyOSError::new_err(e.to_string()),
    }
}

/// Maps a loader error: record-layer errors as [`to_py_err`], bad tiles `TFRecordError`, bad
/// arguments (plan, labels, configuration) `ValueError`.
pub fn loader_err(e: LoaderError) -> PyErr {
    match e {
        LoaderError::Record(e) => to_py_err(e),
        LoaderError::Tile { .. } => TFRecordError::new_err(e.to_string()),
        LoaderError::Plan(_) | LoaderError::MissingLabel { .. } | LoaderError::Config(_) => {
            PyValueError::new_err(e.to_string())
        }
    }
}

/// The error for a lock poisoned by an earlier panic.
pub fn poisoned(what: &str) -> PyErr {
    InternalError::new_err(format!(
        "{what} poisoned by an earlier internal error; create a new one"
    ))
}

/// Runs `f`, turning a Rust panic into an [`InternalError`] so no panic crosses into Python.
/// Safe to call inside `py.detach` (a `PyErr` is created lazily, without the GIL).
pub fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(InternalError::new_err(format!(
                "internal error in jaxwsi's native code (please report): {what}"
            )))
        }
    }
}

/// A panic on purpose, to test that panics become `InternalError` (never an abort).
#[pyfunction]
fn _panic_for_test(message: String) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

/// Registers the exception types on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TFRecordError", m.py().get_type::<TFRecordError>())?;
    m.add("InternalError", m.py().get_type::<InternalError>())?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)
}
