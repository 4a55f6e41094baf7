#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: a virtual environment in .venv with jaxwsi built from
# source (Rust extension in release mode) and its test and benchmark extras. Sourced by the
# README's two commands; safe to run again (only what changed is rebuilt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; jaxwsi needs a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
# Editable install: Python sources are used in place, the native module is (re)built by maturin.
.venv/bin/python -m pip install --quiet -e ".[test,bench]"
