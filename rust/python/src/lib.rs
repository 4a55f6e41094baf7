//! `jaxwsi._native`: thin PyO3 bindings over `jaxwsi-core`.
//!
//! Each concept registers its classes and functions from its own module; this file only wires them.
use pyo3::prelude::*;

pub mod errors;
mod loader;
mod records;
mod stain;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    records::register(m)?;
    loader::register(m)?;
    stain::register(m)?;
    Ok(())
}
