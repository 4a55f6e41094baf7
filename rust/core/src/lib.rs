//! jaxwsi-core: the native data layer of jaxwsi, free of Python so it is tested and fuzzed alone.
//!
//! One concept per module; the PyO3 bindings live in the `jaxwsi-python` crate.
