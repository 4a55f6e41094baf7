#!/usr/bin/env bash
# The main job on built-in defaults: set-up if needed, then the end-to-end quickstart.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash experiments/setup.sh
export JAX_PLATFORMS="${JAX_PLATFORMS:-}"
.venv/bin/python experiments/quickstart.py "$@"
