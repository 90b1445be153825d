#!/usr/bin/env bash
# Benchmarks (not pass/fail tests). Makes its own virtual environment with a
# plain (non-editable) install of the pack, plus the official line-bot-sdk as
# a baseline -- installed here only, never a dependency of the pack.
#   bash bench/run.sh            # every benchmark, then the Markdown table
#   bash bench/run.sh --quick    # fewer repetitions
#   bash bench/run.sh --check    # also exit 1 when a figure is past its goal by more than 20 %
# Every row of the performance table comes from this one run, with the
# machine's load average at its start and end (bench/report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
check=() pass=()
for arg in "$@"; do
  case "$arg" in
    --check) check=(--check) ;;
    *) pass+=("$arg") ;;
  esac
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || python3 -c 'import os; print(*os.getloadavg())')
echo "bench: load average at the start: $load_before ($(nproc 2>/dev/null || echo '?') cores)"
python3 -m venv --clear .bench-venv   # fresh each run: a half-made one from an interrupted run is never reused
. .bench-venv/bin/activate
pip install -q --disable-pip-version-check . || { echo "bench: cannot install the pack" >&2; exit 1; }
pip install -q --disable-pip-version-check line-bot-sdk \
  || echo "bench: line-bot-sdk could not be installed; its comparison will be skipped" >&2
# the redis client (state store bench) and the [service] extras (service bench)
pip install -q --disable-pip-version-check redis waitress prometheus_client \
  || echo "bench: the redis client or the [service] extras could not be installed" >&2
rows=$(mktemp -d)
trap 'rm -rf "$rows"' EXIT
cd bench   # run from outside the checkout, so the installed pack is what is measured
python bench.py ${pass[@]+"${pass[@]}"} --json "$rows/core.json" || echo "bench: bench.py failed" >&2
# the Redis state store vs the file store (issue 14); starts its own redis-server
python bench_state.py ${pass[@]+"${pass[@]}"} || echo "bench: bench_state.py failed" >&2
# the HTTP service vs run_action (issue 14); starts its own serve and sandbox
python bench_service.py ${pass[@]+"${pass[@]}"} --json "$rows/service.json" || echo "bench: bench_service.py failed" >&2
# the rate limiter's cost on a warm push, and a token take on files / Redis (issue 23)
python bench_ratelimit.py ${pass[@]+"${pass[@]}"} --json "$rows/ratelimit.json" || echo "bench: bench_ratelimit.py failed" >&2
python report.py ${check[@]+"${check[@]}"} --load-before "$load_before" "$rows/core.json" "$rows/service.json" \
  "$rows/ratelimit.json"
