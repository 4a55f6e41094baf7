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
# The JPEG decoder builds the bundled libjpeg-turbo from source: it needs cmake and nasm.
# pyrfr (SMAC's random forest) has no wheels: it builds from source with swig.
if ! command -v cmake >/dev/null 2>&1 || ! command -v nasm >/dev/null 2>&1 \
    || ! command -v swig >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo"; fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo_cmd" ]; }; then
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq cmake nasm swig >/dev/null
    else
        echo "setup: install cmake, nasm (to build libjpeg-turbo) and swig (to build pyrfr), then rerun" >&2
        exit 1
    fi
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
# Editable install: Python sources are used in place, the native module is (re)built by maturin.
.venv/bin/python -m pip install --quiet -e ".[test,bench]"
