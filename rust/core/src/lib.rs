//! jaxwsi-core: the native data layer of jaxwsi, free of Python so it is tested and fuzzed alone.
//!
//! One concept per module; the PyO3 bindings live in the `jaxwsi-python` crate.

pub mod decode;
pub mod loader;
pub mod plan;
pub mod random;
pub mod stain;
pub mod weighted;

pub mod crc;
pub mod error;
pub mod example;
pub mod framing;
pub mod index;
pub mod stream;
pub mod verify;
