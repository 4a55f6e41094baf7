//! The Python face of `jaxwsi_core::error::Error`: one exception type and one mapping, shared by
//! every binding (records, index, loader).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use jaxwsi_core::error::Error;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyValueError,
};
use pyo3::prelude::*;

create_exception!(
    jaxwsi.io,
    TFRecordError,
    PyValueError,
    "A malformed TFRecord file or record; the message names the file and the byte offset."
);

/// Maps a core error to a Python exception: missing files, permissions and directories become
/// the matching `OSError` subclasses (with the path as `filename`), other I/O failures
/// `OSError`, and every format problem [`TFRecordError`].
pub fn to_py_err(e: Error) -> PyErr {
    let filename = e
        .path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    match e.io_kind() {
        Some(io::ErrorKind::NotFound) => {
            PyFileNotFoundError::new_err((2, "No such file or directory", filename))
        }
        Some(io::ErrorKind::PermissionDenied) => {
            PyPermissionError::new_err((13, "Permission denied", filename))
        }
        Some(io::ErrorKind::IsADirectory) => {
            PyIsADirectoryError::new_err((21, "Is a directory", filename))
        }
        // Corrupt compressed streams surface as InvalidData from the decoder: a format problem.
        Some(io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof) | None => {
            TFRecordError::new_err(e.to_string())
        }
        Some(_) => PyOSError::new_err(e.to_string()),
    }
}

/// Runs `f`, turning a Rust panic into a [`TFRecordError`] so no panic crosses into Python.
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
            Err(TFRecordError::new_err(format!(
                "internal error in jaxwsi's native code (please report): {what}"
            )))
        }
    }
}

/// Registers `TFRecordError` on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TFRecordError", m.py().get_type::<TFRecordError>())
}
