"""Where a service call's CPU goes, and what the throughput goal needs
(issue 22): not a goal row, a diagnosis to re-run when the service's speed
is in question.

bench_service.py's throughput loops are each bound by one interpreter's
CPU: the direct loop by the caller's process (8 threads calling
``run_action``), the HTTP loop by the service's (waitress, 8 threads). So
``rate(http) / rate(direct)`` is about ``cpu(run_action) / cpu(service)``
per call, and the >= 0.8x goal asks the service process to spend at most
1.25x of ``run_action``'s CPU per call. This script measures, in one run,
against one sandbox, the CPU per call (user + system, from ``/proc``; Linux)
of:

* ``run_action``, 8 threads in this process (the baseline's callers);
* the service's app without any server: ``ServiceApp`` called in this
  process, one thread (routing, auth, JSON parse and print, metrics, the
  access log line, then the same ``run_action``);
* waitress alone: the service's own server (``make_server``, the same
  settings and guards) around a bare WSGI app that answers a canned body,
  8 keep-alive clients;
* the service as bench_service.py measures it, 8 keep-alive clients.

The last line compares the sum of the parts with the budget the goal allows.

    python bench/service_breakdown.py [--calls N] [--rounds N]
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_service as bs  # noqa: E402  (the same sandbox, client and throughput loop)

BARE_SERVER = """
import json, sys
from line_connector.redaction import Redactor
from line_connector.service import app as service_app
body = json.dumps([{"status_code": 200, "reason": "OK", "json_body": {"type": "limited", "value": 10000}}]).encode()
def app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
app.redactor = Redactor()
server = service_app.make_server(app, port=0, threads=int(sys.argv[1]))
print(json.dumps({"event": "listening", "url": "http://127.0.0.1:%s" % server.effective_port}), file=sys.stderr,
      flush=True)
service_app._run_until_signal(server, app.redactor, "bare")
"""


def start_bare(err_path):
    """The service's waitress server around a bare app; (process, host, port)."""
    err = open(err_path, "wb")
    proc = subprocess.Popen([bs.PY, "-c", BARE_SERVER, str(bs.CONCURRENCY)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    return bs.wait_listening(proc, err_path)


def http_cpu_per_call(proc, host, port, calls_per_client):
    """(calls/s, server CPU us per call) for CONCURRENCY keep-alive clients."""
    def worker():
        client = bs.Client(host, port)
        return client.call, client.close
    meter = bs.CpuPerCall(proc.pid, None)
    rate = meter.measure(lambda: bs.throughput(worker, calls_per_client), bs.CONCURRENCY * (calls_per_client + 1))
    return rate, meter.per_call()["service"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200, help="calls per client or thread in each round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from line_connector.config import load_config
    from line_connector.runner import run_action
    from line_connector.service.app import create_app

    load_start = bs.loadavg()
    sandbox = subprocess.Popen([bs.PY, "-c", bs.SANDBOX], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = sandbox.stdout.readline().strip()
    asset = {"url": url, "token": "sandbox-channel-access-token"}
    figures = {"run_action": [], "app": [], "waitress": [], "service": []}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            config = os.path.join(tmp, "service.yaml")
            with open(config, "w") as fh:
                json.dump({"assets": {"ops_line": asset}, "api_keys": [bs.API_KEY]}, fh)
            service, host, port = bs.start_service(config, os.path.join(tmp, "serve.stderr"))
            procs.append(service)
            bare, bare_host, bare_port = start_bare(os.path.join(tmp, "bare.stderr"))
            procs.append(bare)
            app = create_app(load_config(config))
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/actions/" + bs.ACTION,
                       "CONTENT_LENGTH": str(len(bs.Client.BODY)), "CONTENT_TYPE": "application/json",
                       "HTTP_AUTHORIZATION": bs.Client.HEADERS["Authorization"], "HTTP_HOST": "127.0.0.1",
                       "wsgi.url_scheme": "http"}
            statuses = []

            def in_process():
                app(dict(environ, **{"wsgi.input": io.BytesIO(bs.Client.BODY)}),
                    lambda status, headers: statuses.append(status))

            def direct():
                run_action(bs.ACTION, asset, {})

            log = open(os.path.join(tmp, "app.stderr"), "w")  # the access lines, as the service writes them
            direct()
            stderr, sys.stderr = sys.stderr, log
            try:
                in_process()
            finally:
                sys.stderr = stderr
            for _ in range(args.rounds):
                meter = bs.CpuPerCall(None, None)
                meter.measure(lambda: bs.throughput(lambda: (direct, lambda: None), args.calls),
                              bs.CONCURRENCY * (args.calls + 1))
                figures["run_action"].append(meter.per_call()["callers"])
                meter = bs.CpuPerCall(None, None)
                stderr, sys.stderr = sys.stderr, log
                try:
                    n = bs.CONCURRENCY * args.calls // 4
                    meter.measure(lambda: [in_process() for _ in range(n)], n)
                finally:
                    sys.stderr = stderr
                figures["app"].append(meter.per_call()["callers"])
                figures["waitress"].append(http_cpu_per_call(bare, bare_host, bare_port, args.calls)[1])
                figures["service"].append(http_cpu_per_call(service, host, port, args.calls)[1])
            log.close()
            if any(not s.startswith("200") for s in statuses):
                raise RuntimeError("the app answered %s" % sorted(set(statuses)))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            sandbox.stdin.close()
            sandbox.wait(10)

    med = {name: statistics.median(v) if v and None not in v else None for name, v in figures.items()}
    print("CPU per call (user + system, us; medians of %d rounds), %s, python %s, %d cores"
          % (args.rounds, bs.ACTION, sys.version.split()[0], os.cpu_count() or 0))
    print("| part | CPU per call |")
    print("|---|---|")
    for name, label in (("run_action", "run_action, %d threads (the baseline's callers)" % bs.CONCURRENCY),
                        ("app", "the service's app + run_action, in process, no server, 1 thread"),
                        ("waitress", "waitress alone (the service's server, bare app), %d clients" % bs.CONCURRENCY),
                        ("service", "the service process, %d clients" % bs.CONCURRENCY)):
        print("| %s | %s |" % (label, "n/a" if med[name] is None else "%.0f us" % med[name]))
    if None not in med.values():
        budget = med["run_action"] / 0.8
        parts = med["app"] + med["waitress"]
        print("goal >= 0.8x needs the service process at <= %.0f us per call (run_action / 0.8); app + waitress "
              "alone: %.0f us, the whole service: %.0f us (%.2fx run_action)"
              % (budget, parts, med["service"], med["service"] / med["run_action"]))
    print("load average (1, 5, 15 min): %s at the start, %s at the end" % (load_start, bs.loadavg()))


if __name__ == "__main__":
    main()
