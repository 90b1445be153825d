"""``line-connector serve --workers N`` (issue 22: the service's throughput
on more than one core): N real processes on one port, started for real on
waitress, driven over HTTP only.

What must make them one service and not N (each checked across processes,
never by looking inside one): an ``Idempotency-Key`` is honoured whichever
worker a retry lands on, even when the copies race; ``/metrics`` from any
worker counts every worker's requests, and keeps a dead worker's; a
webhook route's ``concurrency`` bound holds across processes; a worker
that dies is replaced; SIGTERM drains and stops every worker; a worker
whose parent is killed stops by itself (no orphan keeps serving).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import http_call
from helpers import USER, at_once

WORKERS = ("--workers", "2", "--threads", "2")
PUSH = {"asset": "ops_line", "inputs": {"to": USER, "messages": [{"type": "text", "text": "once, on any worker"}]}}


def children(pid):
    """The pids of ``pid``'s running children (Linux /proc)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return sorted(int(p) for p in fh.read().split())
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what)


def served_by(url):
    """{worker pid: access lines} from the service's log."""
    out = {}
    for record in url.log_lines():
        if record["event"] == "access":
            out.setdefault(record["worker"], []).append(record)
    return out


def until_both_workers(url, call, limit=200):
    """Repeat ``call()`` (one request on a new connection) until the access
    log shows two workers; the answers it gave."""
    answers = []
    for _ in range(limit):
        answers.append(call())
        if len(served_by(url)) >= 2:
            return answers
    pytest.fail("%d requests on new connections all landed on one worker" % limit)


def requests_total(metrics_text, action):
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("line_connector_requests_total{") and 'action="%s"' % action in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def two_workers(start_service, service_sandbox, service_config):
    url = start_service(service_config(service_sandbox), args=WORKERS)
    wait_for(lambda: len(children(url.proc.pid)) == 2, what="two workers")
    return url


def test_workers_are_processes_on_one_port_and_log_which_served(two_workers, api, keys, assert_no_secrets):
    url = two_workers
    listening = [r for r in url.log_lines() if r["event"] == "listening"]
    assert len(listening) == 1 and listening[0]["workers"] == 2  # one line, from the parent
    answers = until_both_workers(url, lambda: api(url + "/v1/actions/line_get_quota", "POST",
                                                   {"asset": "ops_line", "inputs": {}}, key=keys.api))
    assert {status for status, _, _ in answers} == {200}
    assert set(served_by(url)) == set(children(url.proc.pid))
    assert_no_secrets(url.log_text())


def test_idempotency_key_holds_across_workers_even_racing(two_workers, service_sandbox, api, keys):
    """Eight copies of one send with one key, at once, over eight
    connections spread on both workers: LINE gets it once; every copy is
    the first answer replayed, or 409 (the first still running); later
    retries replay it byte for byte whichever worker takes them."""
    url = two_workers
    answers = at_once(lambda _: api(url + "/v1/actions/line_send_push", "POST", PUSH,
                                    headers={"Idempotency-Key": "race-1"}, key=keys.api), 8)
    assert len(answers) == 8
    first = [a for a in answers if a[0] == 200 and "idempotent-replayed" not in a[1]]
    assert len(first) == 1, [a[0] for a in answers]
    for status, headers, body in answers:
        assert status == 409 or (status == 200 and body == first[0][2]), (status, body[:200])
    retries = until_both_workers(url, lambda: api(url + "/v1/actions/line_send_push", "POST", PUSH,
                                                  headers={"Idempotency-Key": "race-1"}, key=keys.api))
    for status, headers, body in retries:
        assert (status, headers.get("idempotent-replayed"), body) == (200, "true", first[0][2])
    assert service_sandbox.stats()["line"]["deliveries"] == 1


def test_metrics_sum_every_worker_and_keep_a_dead_ones(two_workers, api, keys):
    url = two_workers
    quota = lambda: api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line", "inputs": {}},
                        key=keys.api)
    n = len(until_both_workers(url, quota))
    by_worker = {pid: len(lines) for pid, lines in served_by(url).items()}
    for _ in range(6):  # scrapes on new connections: whichever worker answers, the sum
        status, _, body = api(url + "/metrics")
        assert status == 200
        assert requests_total(body.decode(), "line_get_quota") == n
    victim = max(by_worker, key=by_worker.get)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: any(r["event"] == "worker_exited" and r["worker"] == victim for r in url.log_lines()),
             what="worker_exited")
    wait_for(lambda: len(children(url.proc.pid)) == 2 and victim not in children(url.proc.pid),
             what="a replacement worker")
    assert quota()[0] == 200
    status, _, body = api(url + "/metrics")
    assert requests_total(body.decode(), "line_get_quota") == n + 1  # the dead worker's count stays


def test_sigterm_stops_every_worker_and_cleans_up(two_workers, api):
    url = two_workers
    workers = children(url.proc.pid)
    url.proc.send_signal(signal.SIGTERM)
    assert url.proc.wait(30) == 0
    assert not [pid for pid in workers if alive(pid)]
    lines = url.log_lines()
    stopped = [r for r in lines if r["event"] == "stopped"]
    assert sorted(r["worker"] for r in stopped if "worker" in r) == workers
    assert [r["workers"] for r in stopped if "workers" in r] == [2]
    assert not [r for r in lines if r["event"] in ("worker_exited", "worker_failed")]


def test_a_worker_whose_parent_is_killed_stops(two_workers):
    url = two_workers
    workers = children(url.proc.pid)
    url.proc.kill()
    url.proc.wait(10)
    wait_for(lambda: not [pid for pid in workers if alive(pid)], timeout=15, what="the orphaned workers to stop")
    assert [r["signal"] for r in url.log_lines() if r["event"] == "stopped"] == ["parent_gone"] * 2


def test_a_state_store_the_workers_cannot_share_is_refused_at_start(start_service, service_sandbox,
                                                                     service_config, tmp_path):
    """A file store whose directory cannot be used falls back to one
    process's memory: each worker would keep its own Idempotency-Key
    records, and a retry reaching another worker would send again. Exit 2
    naming config.state, before listening (here: the state directory is a
    symlink, which the file store refuses)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(str(tmp_path / "elsewhere"), str(cache / "state"))
    cfg = tmp_path / "refused.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox)), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "line_connector.cli", "serve", "--config", str(cfg), "--port", "0",
                           "--workers", "2"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, LINE_CONNECTOR_CACHE_DIR=str(cache)))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = json.loads(done.stderr)
    assert error["details"][0]["path"] == "config.state" and "--workers" in error["error"]
    assert service_sandbox.stats()["requests"] == 0


def test_sigterm_right_after_listening_stops_every_worker_at_once(start_service, service_sandbox, service_config):
    """A stop signal that lands while the workers are being forked reaches
    them (blocked across the fork, then delivered to the worker's own
    handler): no worker serves on until the parent's drain time runs out."""
    url = start_service(service_config(service_sandbox), args=("--workers", "4", "--threads", "2"))
    started = time.monotonic()
    url.proc.send_signal(signal.SIGTERM)
    assert url.proc.wait(30) == 0
    assert time.monotonic() - started < 15
    stopped = [r for r in url.log_lines() if r["event"] == "stopped" and "workers" in r]
    assert stopped and stopped[0]["killed"] == 0


def test_draining_refuses_new_connections_and_finishes_the_call_in_flight(make_sandbox, start_service,
                                                                         service_config, api, keys):
    """After SIGTERM the port is closed at once (a new client is refused,
    as by one serve, never left hanging until the drain ends), and the call
    in flight finishes with its answer."""
    import socket
    import urllib.parse

    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["slow"], slow_seconds=6.0))
    url = start_service(service_config(sandbox), args=WORKERS)
    wait_for(lambda: len(children(url.proc.pid)) == 2, what="two workers")
    answer = []
    slow = threading.Thread(target=lambda: answer.append(api(url + "/v1/actions/line_get_quota", "POST",
                                                             {"asset": "ops_line"}, key=keys.api)))
    slow.start()
    wait_for(lambda: sandbox.stats()["requests"] >= 1, what="the slow call to reach the vendor")
    url.proc.send_signal(signal.SIGTERM)
    parts = urllib.parse.urlsplit(url)

    def refused():
        try:
            socket.create_connection((parts.hostname, parts.port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        return False
    wait_for(refused, timeout=4, what="new connections to be refused")  # each worker's loop wakes within 1 s
    assert not answer  # refused while the call was still running
    slow.join(30)
    assert answer and answer[0][0] == 200
    assert url.proc.wait(30) == 0
    stopped = [r for r in url.log_lines() if r["event"] == "stopped"]
    assert [r["in_flight"] for r in stopped if "worker" in r and r["in_flight"]] == [1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "line_connector.cli", "serve"] + list(args),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_bad_worker_count_is_refused(value):
    done = _cli("--sandbox", "--workers", value)
    assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr


def test_sandbox_trial_is_one_process():
    done = _cli("--sandbox", "--port", "0", "--workers", "2")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert json.loads(done.stderr)["details"][0]["path"] == "--workers"


HOLD = """
import sys, time
from line_connector.service.webhooks import SharedSlots
slots = SharedSlots(sys.argv[1], "route-a", 2)
assert slots.acquire() and slots.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_shared_slots_bound_a_route_across_processes(tmp_path):
    """The route bound under --workers: slots held by another process are
    not free here; a process killed while holding them frees them (the
    kernel drops its locks: no slot leaks, no counter drifts)."""
    from line_connector.service.webhooks import SharedSlots

    slots = SharedSlots(str(tmp_path), "route-a", 2)
    other_route = SharedSlots(str(tmp_path), "route-b", 1)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert slots.acquire() is False
        assert other_route.acquire() is True  # routes are bounded apart
        other_route.release()
    finally:
        holder.kill()
        holder.wait(10)
    assert slots.acquire() is True and slots.acquire() is True
    assert slots.acquire() is False  # two per route, within one process too
    results = []
    worker = threading.Thread(target=lambda: results.append(slots.acquire()))
    worker.start()
    worker.join()
    assert results == [False]
    slots.release()
    worker = threading.Thread(target=lambda: results.append(slots.acquire()))
    worker.start()
    worker.join()
    assert results == [False, True]
    slots.close()
    other_route.close()


def test_shared_metrics_refuse_without_the_multiprocess_directory():
    """Per-worker numbers must never be served as the service's: without
    prometheus_client's multiprocess mode, Metrics(shared=True) refuses."""
    code = ("import os; os.environ.pop('PROMETHEUS_MULTIPROC_DIR', None)\n"
            "from line_connector.service.metrics import Metrics\n"
            "try:\n    Metrics(known_actions=['a'], shared=True)\nexcept RuntimeError as e:\n    print('refused', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused") and "PROMETHEUS_MULTIPROC_DIR" in done.stdout


def test_shared_slots_release_and_close_keep_the_bound():
    """A release by a thread holding no slot is refused (never frees
    another thread's slot); close() while a slot is held keeps its lock, so
    no other process can take it until the holder releases it."""
    import tempfile

    from line_connector.service.webhooks import SharedSlots

    with tempfile.TemporaryDirectory() as directory:
        slots = SharedSlots(directory, "route-c", 1)
        assert slots.acquire() is True
        errors = []

        def release_elsewhere():
            try:
                slots.release()
            except RuntimeError as exc:
                errors.append(str(exc))
        worker = threading.Thread(target=release_elsewhere)
        worker.start()
        worker.join()
        assert errors and "holds no slot" in errors[0]
        slots.close()
        probe = ("import sys\nfrom line_connector.service.webhooks import SharedSlots\n"
                 "print(SharedSlots(sys.argv[1], 'route-c', 1).acquire())")
        taken = subprocess.run([sys.executable, "-c", probe, directory], capture_output=True, text=True, timeout=60)
        assert taken.stdout.strip() == "False"  # still held by this process's thread
        slots.release()
        taken = subprocess.run([sys.executable, "-c", probe, directory], capture_output=True, text=True, timeout=60)
        assert taken.stdout.strip() == "True"


def test_webhook_deliveries_racing_on_fresh_workers_are_all_handed_over(start_service, service_sandbox,
                                                                        service_config, tmp_path):
    """Sixteen deliveries at once reach freshly started workers (the route's
    slots are first used concurrently there): every one is 200 and handed
    over once; none is a 500 from a slot two threads both took."""
    from line_connector.sandbox import webhook_body

    sink = tmp_path / "events.jsonl"
    config = service_config(service_sandbox, webhooks={
        "ops": {"asset": "ops_secret", "concurrency": 64, "forward": [{"jsonl": str(sink)}]}})
    url = start_service(config, args=("--workers", "2", "--threads", "20"))  # 18 deliveries each at once
    wait_for(lambda: len(children(url.proc.pid)) == 2, what="two workers")

    def deliver(n):
        text, signature = webhook_body([{
            "type": "unfollow", "timestamp": 1700000000000, "mode": "active", "webhookEventId": "01HWORKERS%016d" % n,
            "source": {"type": "user", "userId": USER}, "deliveryContext": {"isRedelivery": False}}])
        return http_call(url + "/v1/webhooks/ops", "POST", text.encode("utf-8"),
                         headers={"x-line-signature": signature})[0]

    assert at_once(deliver, 16) == [200] * 16
    assert [deliver(100 + n) for n in range(8)] == [200] * 8
    assert len(sink.read_text(encoding="utf-8").splitlines()) == 24
    assert not [r for r in url.log_lines() if r["event"] == "webhook_internal_error"]
