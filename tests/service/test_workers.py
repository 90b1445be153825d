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
