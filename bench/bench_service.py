"""The service door vs calling the runner directly (issue 14), same run, same
machine, against the sandbox (a separate process on 127.0.0.1):

* latency: ``line_get_quota`` as ``POST /v1/actions/line_get_quota`` through
  ``line-connector serve`` (waitress, its own process, keep-alive
  connection) vs a ``run_action("line_get_quota", ...)`` loop in this
  process; p50 of each, and the overhead p50(http) - p50(direct)
  (target <= 1 ms);
* throughput: 8 concurrent HTTP clients (one keep-alive connection each)
  vs 8 threads calling ``run_action``; calls per second, and their ratio
  (target >= 0.8x). The service runs as deployed for throughput: ``serve
  --workers N``, one process per core (``--workers``; default the number
  of cores, at most 4), 8 threads each; the same clients against a
  one-process ``serve`` are reported beside it (no goal), as the figure an
  interpreter's one core gives.

Rounds alternate (direct, http, direct, http...) so drift on a shared
machine hits both; the figures are medians over rounds. The HTTP client is
the standard library's ``http.client``, so the overhead measured is the
service's (parsing, auth, JSON, the access log, a second process hop), not
a client library's.

Beside each figure: the CPU time (user + system) per call of each process,
this one (the callers: ``run_action``'s 8 threads, or the 8 HTTP clients),
the service and the sandbox, read from ``/proc`` (Linux; elsewhere only
this process's). Why: both loops are bound by one interpreter's CPU (the
direct loop by this process's, the HTTP loop by the service's), so the
throughput ratio is close to run_action's CPU per call over the service's,
and these figures say where a call's time goes on a machine shared with
other work, where wall time alone cannot. The rows' CPU-time ratio is the
callers' and the service's CPU per call over the direct callers' (the
sandbox, LINE's stand-in, is the same work in both and left out).

    python bench/bench_service.py [--quick]
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PY = sys.executable
API_KEY = "bench-service-api-key-0123456789"
SANDBOX = """
import sys
from line_connector.sandbox import Sandbox
sb = Sandbox(port=0).start()
print(sb.url, flush=True)
sys.stdin.read()
"""
CONCURRENCY = 8
ACTION = "line_get_quota"


def start_service(config_path, err_path, workers=1):
    """``line-connector serve`` on a free port; (process, host, port)."""
    err = open(err_path, "wb")
    proc = subprocess.Popen([PY, "-m", "line_connector.cli", "serve", "--config", config_path, "--port", "0",
                             "--threads", str(CONCURRENCY), "--workers", str(workers)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return wait_listening(proc, err_path)


def wait_listening(proc, err_path):
    """(process, host, port) once ``proc`` logged its ``listening`` line."""
    end = time.monotonic() + 30
    while time.monotonic() < end and proc.poll() is None:
        with open(err_path, "rb") as fh:
            for line in fh.read().decode("utf-8", "replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "listening":
                    host, port = record["url"].split("//", 1)[1].rsplit(":", 1)
                    return proc, host, int(port)
        time.sleep(0.05)
    proc.kill()
    with open(err_path, "rb") as fh:
        raise RuntimeError("serve did not start: %s" % fh.read()[-2000:].decode("utf-8", "replace"))


class Client:
    """One keep-alive connection to the service."""

    BODY = json.dumps({"asset": "ops_line", "inputs": {}}).encode()
    HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer " + API_KEY}

    def __init__(self, host, port):
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self):
        self.conn.request("POST", "/v1/actions/" + ACTION, body=self.BODY, headers=self.HEADERS)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError("service answered %d: %s" % (resp.status, data[:500]))

    def close(self):
        self.conn.close()


def cpu_seconds(pid=None):
    """User + system CPU seconds of this process (``pid`` None) or of
    another one and its running children (``serve --workers``: the workers
    do the serving; Linux ``/proc``; None where that cannot be read)."""
    if pid is None:
        return time.process_time()
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            children = [int(child) for child in fh.read().split()]
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    for child in children:
        more = cpu_seconds(child)
        if more is None:
            return None
        total += more
    return total


class CpuPerCall:
    """CPU microseconds per call of this process, the service and the
    sandbox (a pid of None: not measured), summed over the blocks run
    through ``measure``."""

    def __init__(self, service_pid, sandbox_pid):
        self.pids = {"callers": None, "service": service_pid, "sandbox": sandbox_pid}
        self.totals = {"callers": 0.0, "service": None if service_pid is None else 0.0,
                       "sandbox": None if sandbox_pid is None else 0.0}
        self.calls = 0

    def _read(self, name):
        if name != "callers" and self.pids[name] is None:
            return None
        return cpu_seconds(self.pids[name])

    def measure(self, fn, calls):
        before = {name: self._read(name) for name in self.pids}
        result = fn()
        for name in self.pids:
            after = self._read(name)
            if before[name] is None or after is None:
                self.totals[name] = None
            elif self.totals[name] is not None:
                self.totals[name] += after - before[name]
        self.calls += calls
        return result

    def per_call(self):
        """{process: microseconds per call or None}."""
        return {name: (None if total is None or not self.calls else total / self.calls * 1e6)
                for name, total in self.totals.items()}


def loadavg():
    return " ".join("%.2f" % x for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def latencies(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def throughput(make_worker, calls_per_worker):
    """Calls per second of CONCURRENCY threads, each making its own caller
    (``make_worker()`` -> (call, close)) and calling it ``calls_per_worker``
    times; all start together."""
    barrier = threading.Barrier(CONCURRENCY + 1)
    errors = []

    def work():
        call, close = make_worker()
        try:
            call()  # warm: connection open, validators built
            barrier.wait()
            for _ in range(calls_per_worker):
                call()
        except Exception as exc:  # reported after the run
            errors.append(exc)
            try:
                barrier.abort()
            except Exception:
                pass
        finally:
            close()

    threads = [threading.Thread(target=work) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return CONCURRENCY * calls_per_worker / wall


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the two rows to this file (for bench/report.py)")
    parser.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="serve --workers for the latency and throughput rows (default: cores, at most 4)")
    args = parser.parse_args()
    n_lat, n_thr, rounds = (300, 100, 3) if args.quick else (1000, 300, 5)
    load_start = loadavg()

    from line_connector import __version__
    from line_connector.runner import run_action

    sandbox = subprocess.Popen([PY, "-c", SANDBOX], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = sandbox.stdout.readline().strip()
    asset = {"url": url, "token": "sandbox-channel-access-token"}
    service = single = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            config = os.path.join(tmp, "service.yaml")
            with open(config, "w") as fh:
                json.dump({"assets": {"ops_line": asset}, "api_keys": [API_KEY]}, fh)  # JSON is YAML
            service, host, port = start_service(config, os.path.join(tmp, "serve.stderr"), args.workers)
            single, host1, port1 = start_service(config, os.path.join(tmp, "serve1.stderr"), 1)

            def direct():
                run_action(ACTION, asset, {})

            client = Client(host, port)
            direct()
            client.call()  # warm both: imports, validators, connections
            Client(host1, port1).call()
            p50 = {"direct": [], "http": []}
            rate = {"direct": [], "http": [], "http1": []}
            # CPU per call of each process, for the latency loops and the throughput loops
            cpu = {(kind, mode): CpuPerCall(single.pid if mode == "http1" else service.pid, sandbox.pid)
                   for kind, mode in (("p50", "direct"), ("p50", "http"), ("rate", "direct"), ("rate", "http"),
                                      ("rate", "http1"))}
            n_rate = CONCURRENCY * (n_thr + 1)  # each worker warms with one call first
            for _ in range(rounds):
                p50["direct"].append(statistics.median(
                    cpu["p50", "direct"].measure(lambda: latencies(direct, n_lat), n_lat)))
                p50["http"].append(statistics.median(
                    cpu["p50", "http"].measure(lambda: latencies(client.call, n_lat), n_lat)))
                rate["direct"].append(cpu["rate", "direct"].measure(
                    lambda: throughput(lambda: (direct, lambda: None), n_thr), n_rate))

                for mode, where in (("http", (host, port)), ("http1", (host1, port1))):
                    def http_worker(where=where):
                        c = Client(*where)
                        return c.call, c.close
                    rate[mode].append(cpu["rate", mode].measure(lambda: throughput(http_worker, n_thr), n_rate))
            client.close()
        finally:
            for proc in (service, single):
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
            sandbox.stdin.close()
            sandbox.wait(10)

    d, h = statistics.median(p50["direct"]), statistics.median(p50["http"])
    rd, rh, r1 = (statistics.median(rate[mode]) for mode in ("direct", "http", "http1"))
    overhead = (h - d) * 1000
    served = "serve --workers %d" % args.workers
    print("line-connector %s, python %s, %s, %d cores; %s via %s (waitress, %d threads each) vs run_action; "
          "medians of %d rounds" % (__version__, sys.version.split()[0], sys.platform, os.cpu_count() or 0,
                                    ACTION, served, CONCURRENCY, rounds))
    print("| benchmark | service (HTTP) | direct run_action | figure | target |")
    print("|---|---|---|---|---|")
    print("| p50 latency, 1 client | %.2f ms | %.2f ms | +%.2f ms overhead | <= 1 ms%s |"
          % (h * 1000, d * 1000, overhead, "" if overhead <= 1.0 else " (missed)"))
    print("| throughput, %d concurrent clients vs %d threads | %.0f calls/s | %.0f calls/s | %.2fx | >= 0.8x%s |"
          % (CONCURRENCY, CONCURRENCY, rh, rd, rh / rd, "" if rh / rd >= 0.8 else " (missed)"))
    print("| same, one-process serve (no goal) | %.0f calls/s | %.0f calls/s | %.2fx | reported |" % (r1, rd, r1 / rd))
    print()
    print("CPU time per call (user + system, us), by process:")
    print("| loop | callers (this process) | service | sandbox |")
    print("|---|---|---|---|")
    per = {key: c.per_call() for key, c in cpu.items()}
    for (kind, mode), label in ((("p50", "direct"), "1 caller, run_action"), (("p50", "http"), "1 client, HTTP"),
                                (("rate", "direct"), "%d threads, run_action" % CONCURRENCY),
                                (("rate", "http"), "%d clients, HTTP" % CONCURRENCY),
                                (("rate", "http1"), "%d clients, HTTP, one-process serve" % CONCURRENCY)):
        row = per[kind, mode]
        print("| %s | %s | %s | %s |" % (label, *("-" if mode == "direct" and name == "service" else
                                                  "n/a" if row[name] is None else "%.0f" % row[name]
                                                  for name in ("callers", "service", "sandbox"))))
    print("load average (1, 5, 15 min): %s at the start, %s at the end" % (load_start, loadavg()))

    def cpu_ratio(kind, mode="http"):
        """(callers + service) CPU per call over HTTP, over the direct callers'."""
        http, direct_ = per[kind, mode], per[kind, "direct"]
        if http["callers"] is None or http["service"] is None or not direct_["callers"]:
            return None
        return (http["callers"] + http["service"]) / direct_["callers"]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([
                {"key": "service_p50", "name": "service (`%s`): p50 overhead over `run_action` (%s)"
                 % (served, ACTION),
                 "pack": h * 1000, "baseline": d * 1000, "unit": "ms", "ratio": h / d, "figure": overhead,
                 "shown": "%+.2f ms" % overhead, "goal": ["<=", 1.0], "cpu_ratio": cpu_ratio("p50")},
                {"key": "service_rate", "name": "service (`%s`): %d-client throughput vs %d threads calling "
                 "`run_action`" % (served, CONCURRENCY, CONCURRENCY), "pack": rh, "baseline": rd,
                 "unit": "calls/s", "ratio": rh / rd, "figure": rh / rd, "shown": "%.2fx" % (rh / rd),
                 "goal": [">=", 0.8], "cpu_ratio": cpu_ratio("rate")},
                {"key": "service_rate_1", "name": "same, one-process `serve` (no goal)", "pack": r1,
                 "baseline": rd, "unit": "calls/s", "ratio": r1 / rd, "figure": r1 / rd, "shown": "%.2fx" % (r1 / rd),
                 "goal": None, "cpu_ratio": cpu_ratio("rate", "http1")}], fh)
    print(json.dumps({"p50_http_ms": round(h * 1000, 3), "p50_direct_ms": round(d * 1000, 3),
                      "overhead_ms": round(overhead, 3), "rate_http": round(rh, 1), "rate_direct": round(rd, 1),
                      "ratio": round(rh / rd, 3), "rate_http_one_process": round(r1, 1), "workers": args.workers,
                      "rounds": rounds,
                      "cpu_us_per_call": {"%s_%s" % key: {name: None if v is None else round(v)
                                                          for name, v in value.items()}
                                          for key, value in per.items()}}))


if __name__ == "__main__":
    main()
