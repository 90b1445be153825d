#!/usr/bin/env bash
# Benchmarks (not pass/fail tests). Makes its own virtual environment with a
# plain (non-editable) install of the pack, plus the official line-bot-sdk as
# a baseline -- installed here only, never a dependency of the pack.
#   bash bench/run.sh            # every benchmark
#   bash bench/run.sh --quick    # fewer repetitions
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv --clear .bench-venv   # fresh each run: a half-made one from an interrupted run is never reused
. .bench-venv/bin/activate
pip install -q --disable-pip-version-check . || { echo "bench: cannot install the pack" >&2; exit 1; }
pip install -q --disable-pip-version-check line-bot-sdk \
  || echo "bench: line-bot-sdk could not be installed; its comparison will be skipped" >&2
cd bench   # run from outside the checkout, so the installed pack is what is measured
python bench.py "$@"
# the Redis state store vs the file store (issue 14); starts its own redis-server
pip install -q --disable-pip-version-check redis || echo "bench: the redis client could not be installed" >&2
python bench_state.py "$@"
# the HTTP service vs run_action (issue 14); starts its own serve and sandbox
pip install -q --disable-pip-version-check waitress prometheus_client \
  || echo "bench: the [service] extras could not be installed" >&2
python bench_service.py "$@"
