"""The Redis state store vs the file store (issue 14: <= 0.5 ms added per
action that touches the store), measured in the same run on the same machine.

* per action: ``line_send_push`` with a ``retry_key`` (the retry-key memory
  path: one atomic add before the send, a read when judging) through
  ``run_action`` against the sandbox (a separate process on 127.0.0.1), file
  store vs Redis, interleaved in blocks so drift hits both alike; medians;
* per store operation: get, put, add_if_absent, lock + release.

It starts its own ``redis-server`` on a free 127.0.0.1 port (no persistence)
and stops it at the end; without redis-server or the redis client it says
so and exits 0 (a benchmark, not a test).

    python bench/bench_state.py [--quick]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

TEXT = [{"type": "text", "text": "benchmark"}]
SERVER = """
import sys
from line_connector.sandbox import Sandbox
sb = Sandbox(port=0).start()
print(sb.url, flush=True)
sys.stdin.read()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp):
    binary = shutil.which("redis-server")
    if not binary:
        return None, None
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, "redis://127.0.0.1:%d/0" % port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def use(url):
    from line_connector import state

    if url:
        os.environ["LINE_CONNECTOR_STATE"] = url
    else:
        os.environ.pop("LINE_CONNECTOR_STATE", None)
    return state.store()


def per_action(url, asset, n, user):
    from line_connector import run_action

    use(url)
    times = []
    for _ in range(n):
        inputs = {"to": user, "messages": TEXT, "retry_key": str(uuid.uuid4())}
        t = time.perf_counter()
        run_action("line_send_push", asset, inputs)
        times.append(time.perf_counter() - t)
    return times


def per_op(url, n):
    store = use(url)
    out = {}
    keys = [uuid.uuid4().hex for _ in range(n)]

    def timed(name, fn):
        t = time.perf_counter()
        for k in keys:
            fn(k)
        out[name] = (time.perf_counter() - t) / n * 1e6

    timed("put", lambda k: store.put("bench", k, {"sha256": k}, 60))
    timed("get", lambda k: store.get("bench", k))
    timed("add_if_absent", lambda k: store.add_if_absent("bench", k + "-a", {"sha256": k}, 60, wait=5))

    def lock(k):
        with store.lock("bench", k, 5):
            pass

    timed("lock+release", lock)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_block, blocks, n_ops = (50, 3, 300) if args.quick else (100, 6, 2000)
    try:
        import redis  # noqa: F401
    except ImportError:
        print("bench_state: the redis client is not installed (pip install 'line-connector[service]'); skipped")
        return 0
    tmp = tempfile.mkdtemp(prefix="lc-bench-state-")
    os.environ["LINE_CONNECTOR_CACHE_DIR"] = os.path.join(tmp, "cache")
    redis_proc, url = start_redis(tmp)
    if redis_proc is None:
        print("bench_state: redis-server is not installed (apt-get install -y redis-server); skipped")
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    sandbox = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        base = sandbox.stdout.readline().strip()
        from line_connector.sandbox import CHANNEL_TOKEN  # the sandbox's demo channel token

        asset = {"token": CHANNEL_TOKEN, "url": base}
        user = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
        per_action(None, asset, 20, user)  # warm up both paths
        per_action(url, asset, 20, user)
        file_t, redis_t = [], []
        for _ in range(blocks):
            file_t += per_action(None, asset, n_block, user)
            redis_t += per_action(url, asset, n_block, user)
        f50, r50 = statistics.median(file_t) * 1e3, statistics.median(redis_t) * 1e3
        print("line_send_push with retry_key, %d runs each (median ms per action)" % len(file_t))
        print("  file store %8.3f ms   redis %8.3f ms   added %+7.3f ms   ratio %5.2fx   target added <= 0.5 ms"
              % (f50, r50, r50 - f50, r50 / f50))
        fo, ro = per_op(None, n_ops), per_op(url, n_ops)
        print("store operations, %d each (mean us per operation)" % n_ops)
        for name in fo:
            print("  %-14s file %8.1f us   redis %8.1f us   ratio %5.2fx" % (name, fo[name], ro[name],
                                                                           ro[name] / fo[name]))
    finally:
        sandbox.stdin.close()
        sandbox.wait(10)
        redis_proc.terminate()
        try:
            redis_proc.wait(5)
        except subprocess.TimeoutExpired:
            redis_proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
