#!/usr/bin/env bash
# The whole test suite: set-up if needed, then Rust checks and tests, then ruff and pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash experiments/setup.sh
# Same interpreter for cargo (pyo3 build script) as for maturin, so neither invalidates the other.
export PYO3_PYTHON="$root/.venv/bin/python"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test -p jaxwsi-core --quiet
.venv/bin/ruff check jaxwsi tests experiments
.venv/bin/python -m mypy jaxwsi
# 8 host devices so data-parallel code is tested on the CPU.
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=8"
export JAX_PLATFORMS=cpu
.venv/bin/python -m pytest "$@"
