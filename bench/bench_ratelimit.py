"""What LINE's rate limiter (issue 23) costs the warm single-send path.

Measured in one child process, against the sandbox served by another:
``run_action("line_send_push")`` with the limiter as shipped and with its
wait replaced by a no-op (same process, same connection pool), alternating
rounds so drift hits both alike (the ratio is the median of each round's
pair); the goal is the limiter within 5 % of the push without it. Also the bare cost of one token take, per state store:
the file store (the default: every process of a machine) and, when
redis-server is installed, Redis (a fleet).

    python bench/bench_ratelimit.py [--quick]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


PY = sys.executable
SERVER = """
import sys
from line_connector.sandbox import Sandbox
sb = Sandbox(port=0).start()
print(sb.url, flush=True)
sys.stdin.read()
"""
WARM = """
import json, statistics, sys, time
from line_connector import run_action, ratelimit
url, token, calls, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
asset = {"url": url, "token": token}
inputs = {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", "messages": [{"type": "text", "text": "benchmark"}]}
real_wait = ratelimit.Limiter.wait
def no_wait(self, max_wait):
    return 0.0, None
for _ in range(100):
    run_action("line_send_push", asset, inputs)
times = {"with": [], "without": []}
cpu = {"with": [], "without": []}
for i in range(rounds):
    for mode in (("with", "without") if i % 2 == 0 else ("without", "with")):
        ratelimit.Limiter.wait = real_wait if mode == "with" else no_wait
        t, c = time.perf_counter(), time.process_time()
        for _ in range(calls):
            run_action("line_send_push", asset, inputs)
        times[mode].append((time.perf_counter() - t) / calls)
        cpu[mode].append((time.process_time() - c) / calls)
ratelimit.Limiter.wait = real_wait
ratios = [w / wo for w, wo in zip(times["with"], times["without"])]  # paired: drift cancels
out = {k: statistics.median(v) for k, v in times.items()}
out["ratio"] = statistics.median(ratios)
out["cpu"] = {k: statistics.median(v) for k, v in cpu.items()}
out["cpu_ratio"] = statistics.median([w / wo for w, wo in zip(cpu["with"], cpu["without"])])
out["rounds"] = [[round(w * 1e6), round(wo * 1e6)] for w, wo in zip(times["with"], times["without"])]
print(json.dumps(out))
"""
TAKE = """
import json, statistics, sys, time
from line_connector import ratelimit, state
store = state.store()
n = int(sys.argv[1])
key = "bench\\nPOST /v2/bot/message/push"
per = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range(n):
        ratelimit.take(store, key, 1e9, 1e9, 60.0)
    per.append((time.perf_counter() - t) / n)
print(json.dumps({"take": statistics.median(per), "store": type(store).__name__}))
"""


def child(code, *args, env=None):
    out = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the limiter's row for bench/report.py to this file")
    args = parser.parse_args()
    calls, rounds, takes = (300, 6, 2000) if args.quick else (500, 16, 20000)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=tmp)
        env.pop("LINE_CONNECTOR_STATE", None)
        server = subprocess.Popen([PY, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().strip()
            warm = child(WARM, url, "sandbox-channel-access-token", str(calls), str(rounds), env=env)
        finally:
            server.stdin.close()
            server.wait(timeout=10)
        print("%-48s with %8.1f us  without %8.1f us  ratio %5.3fx   target <= 1.05x"
              % ("warm push (file store), limiter on vs off", warm["with"] * 1e6, warm["without"] * 1e6,
                 warm["ratio"]))
        print("%-48s with %8.1f us  without %8.1f us  ratio %5.3fx   (this process's CPU time: steadier "
              "on a shared machine)" % ("  client CPU per push", warm["cpu"]["with"] * 1e6,
                                        warm["cpu"]["without"] * 1e6, warm["cpu_ratio"]))
        print("  rounds (wall us per push, with / without):", warm["rounds"])
        if args.json:
            with open(args.json, "w") as fh:
                json.dump([{"key": "warm_limiter", "name": "warm push, rate limiter on vs off (file store)",
                            "pack": warm["with"] * 1e6, "baseline": warm["without"] * 1e6, "unit": "us",
                            "figure": warm["ratio"], "shown": "%.3fx" % warm["ratio"], "goal": ["<=", 1.05],
                            "cpu_ratio": warm["cpu_ratio"]}], fh)
        take = child(TAKE, str(takes), env=env)
        print("%-48s %8.1f us per request" % ("one token take, file store", take["take"] * 1e6))
        from bench_state import start_redis  # this directory's: no pytest in the benchmark's environment

        redis_dir = tempfile.mkdtemp(prefix="line-connector-bench-redis-")
        try:
            proc, url = start_redis(redis_dir)
            if proc is None:
                print("one token take, Redis: skipped (redis-server is not installed)")
                return
            try:
                take = child(TAKE, str(takes), env=dict(env, LINE_CONNECTOR_STATE=url))
                print("%-48s %8.1f us per request" % ("one token take, Redis (loopback)", take["take"] * 1e6))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        finally:
            shutil.rmtree(redis_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
