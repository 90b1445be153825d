"""The Redis backend of the state store (SPEC 8; issue 14 item 5), against a
real redis-server (tests/redis_server.py): same semantics as the file store,
shared by processes, bounded, and an outage is a clear failure of the action
(never a silent fallback that would fetch a second Sobot token)."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import TEXT, run_cli
from line_connector import ActionError, InputError, run_action, state
from line_connector.filecache import cache_dir
from line_connector.http import HttpClient, deadline_scope
from redis_server import RedisServer

redis = pytest.importorskip("redis")

PASSWORD = "Canary-Redis-Pass-5Zq8"


@pytest.fixture
def rstore(redis_url, monkeypatch):
    """The process store, on the session's Redis (flushed first: tests share it)."""
    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("LINE_CONNECTOR_STATE", redis_url)
    state.forget()
    found = state.store()
    assert type(found).__name__ == "RedisStore" and found.shared and found.note is None
    return found


def raw_client(url):
    return redis.Redis.from_url(url)


def no_state_files():
    root = os.path.join(cache_dir(), "state")
    return not os.path.exists(root) or not any(files for _, _, files in os.walk(root))


# ------------------------------------------------------------- semantics
def test_get_put_delete_ttl_and_hashed_keys(rstore, redis_url):
    rstore.put("t", "sobot-secret-hash-key", {"a": [1, "x"]}, 60)
    assert rstore.get("t", "sobot-secret-hash-key") == {"a": [1, "x"]} and rstore.get("t", "other") is None
    keys = [k.decode() for k in raw_client(redis_url).keys("*")]
    khash = hashlib.sha256(b"t\nsobot-secret-hash-key").hexdigest()
    assert keys == ["line-connector:t:" + khash]  # namespaced, the raw key never stored
    assert 55_000 < raw_client(redis_url).pttl(keys[0]) <= 60_000  # Redis expires it (PX)
    rstore.put("t", "short", 1, 0.3)
    deadline = time.monotonic() + 10
    while rstore.get("t", "short") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rstore.get("t", "short") is None
    with pytest.raises(ValueError):
        rstore.put("t", "k", {"x": float("nan")}, 60)
    for ttl in (0, -1, float("nan"), float("inf"), None):
        with pytest.raises(ValueError):
            rstore.put("t", "k", 1, ttl)
    with pytest.raises(ValueError):
        rstore.get("Bad Namespace", "k")
    rstore.delete("t", "sobot-secret-hash-key")
    assert rstore.get("t", "sobot-secret-hash-key") is None


def test_a_bad_value_is_absent_and_replaced(rstore, redis_url):
    r = raw_client(redis_url)
    rstore.put("bad", "k", 1, 60)
    (rkey,) = r.keys("line-connector:bad:*")
    other = json.loads(r.get(rkey))
    for junk in (b"", b"\xff\xfe", b"[" * 200000, b"NaN", b'{"v":1,"k":"x","value":1}',
                 json.dumps(dict(other, k="0" * 64)).encode(),  # copied from another key
                 b'{"v":1,"k":"%s","value":NaN}' % other["k"].encode(),
                 b"x" * (state.MAX_ENTRY_BYTES + 10)):
        r.set(rkey, junk)
        assert rstore.get("bad", "k") is None
        assert rstore.add_if_absent("bad", "k", 2, 60) is None and rstore.get("bad", "k") == 2
    r.delete(rkey)
    r.lpush(rkey, b"not a string")  # another type under our key: absent, then replaced
    assert rstore.get("bad", "k") is None
    assert rstore.add_if_absent("bad", "k", 3, 60) is None and rstore.get("bad", "k") == 3


ADDER = textwrap.dedent("""
    import sys
    from line_connector import state
    print("won" if state.store().add_if_absent("race", "one-key", {"by": sys.argv[1]}, 60, wait=30) is None
          else "lost")
""")


def test_add_if_absent_is_atomic_across_threads_and_processes(rstore):
    wins, barrier = [], threading.Barrier(16)

    def add(i):
        barrier.wait()
        if rstore.add_if_absent("race", "thread-key", {"by": i}, 60) is None:
            wins.append(i)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1 and rstore.get("race", "thread-key") == {"by": wins[0]}
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(i)], stdout=subprocess.PIPE, text=True)
             for i in range(6)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost"] * 5 + ["won"]


def test_a_lock_is_exclusive_bounded_and_per_key(rstore):
    inside, overlaps = [0], []

    def work():
        for _ in range(20):
            with rstore.lock("ex", "k", 30):
                inside[0] += 1
                if inside[0] != 1:
                    overlaps.append(inside[0])
                time.sleep(0.001)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overlaps
    with rstore.lock("slow", "tenant-a", 1):
        started = time.monotonic()
        with pytest.raises(state.LockTimeout) as exc:
            with rstore.lock("slow", "tenant-a", 0.5):
                pass
        assert 0.4 < time.monotonic() - started < 10 and "slow" in str(exc.value)
        with rstore.lock("slow", "tenant-b", 0.5):  # another key is never blocked
            pass


LOCKER = textwrap.dedent("""
    import sys, time
    from line_connector import state
    from line_connector.http import deadline_scope
    with deadline_scope(1):   # the lease: what the deadline leaves + LOCK_MARGIN (5 s)
        with state.store().lock("xproc", sys.argv[1], 1):
            print("held", flush=True)
            time.sleep(120)
""")


def test_a_lock_expires_when_its_holder_dies(rstore, redis_url):
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, "key-1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(state.LockTimeout):
            with rstore.lock("xproc", "key-1", 0.3):
                pass
        (lkey,) = raw_client(redis_url).keys("line-connector:xproc:*:lock")
        assert 0 < raw_client(redis_url).pttl(lkey) <= 6_000
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    started = time.monotonic()
    with rstore.lock("xproc", "key-1", 20):  # the dead holder's lease ran out
        assert time.monotonic() - started < 20


def test_a_late_release_never_frees_someone_elses_lock(rstore, monkeypatch):
    from line_connector import state_redis

    monkeypatch.setattr(state_redis, "LOCK_MARGIN", 0.2)
    with deadline_scope(0.1):
        with rstore.lock("late", "k", 0.1):  # lease about 0.3 s
            time.sleep(0.6)
            with rstore.lock("late", "k", 2):  # the lease expired: another holder takes it
                pass
            taken = threading.Event()
            holder_done = threading.Event()

            def other():
                with rstore.lock("late", "k", 5):
                    taken.set()
                    holder_done.wait(10)

            t = threading.Thread(target=other)
            t.start()
            assert taken.wait(10)
        # our release ran after the other took it: the token check kept it held
        with pytest.raises(state.LockTimeout):
            with rstore.lock("late", "k", 0.3):
                pass
    holder_done.set()
    t.join(10)


def test_a_resent_command_whose_reply_was_lost_finds_its_own_write(rstore, monkeypatch):
    """The redis client resends a command once when the connection drops; if
    the first one was executed and only its reply lost, the resend finds the
    entry (or lock) that very call made. It must count as this call's, never
    as someone else's: that would answer an idempotent request 409 with its
    own claim, or wait a lock out against itself."""
    real_add, real_set = rstore._add, rstore._client.set

    def executed_twice(fn):
        def call(*args, **kwargs):
            fn(*args, **kwargs)          # executed, reply lost
            return fn(*args, **kwargs)   # the client's resend
        return call

    monkeypatch.setattr(rstore, "_add", executed_twice(real_add))
    assert rstore.add_if_absent("resent", "k", {"x": 1}, 60) is None
    assert rstore.add_if_absent("resent", "k", {"x": 2}, 60) == {"x": 1}  # a real second caller still loses
    monkeypatch.setattr(rstore._client, "set", executed_twice(real_set))
    started = time.monotonic()
    with rstore.lock("resent", "k", 2):
        assert time.monotonic() - started < 1.5
    monkeypatch.setattr(rstore._client, "set", real_set)
    with rstore.lock("resent", "k", 0.5):  # released: free again
        pass


# ------------------------------------------------ users of the store on Redis
CLI_AT = textwrap.dedent("""
    import sys, time
    from line_connector.cli import main   # imported first: the processes then start together
    time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
    sys.exit(main(sys.argv[2:]))
""")


def test_one_sobot_token_across_cli_processes(redis_url, monkeypatch, tmp_path):
    from line_connector.sandbox import Sandbox
    from line_connector.sandbox.sobot import SobotEmulator

    real = SobotEmulator.get_token

    def slow_get_token(self, req):  # a slow token server: meanwhile every process reaches the token step
        time.sleep(4.0)
        return real(self, req)

    monkeypatch.setattr(SobotEmulator, "get_token", slow_get_token)
    raw_client(redis_url).flushdb()
    monkeypatch.setenv("LINE_CONNECTOR_STATE", redis_url)
    with Sandbox() as sandbox:
        asset = sandbox.demo_assets()["sobot"]
        stdin = json.dumps({"asset": asset, "inputs": {"task_start_time": 1714295033250, "page_size": 15}})
        at = "%.3f" % (time.time() + 3)
        (tmp_path / "stdin.json").write_text(stdin)
        procs = []
        for _ in range(5):  # each reads its input from a file: none waits for another to be fed
            with open(tmp_path / "stdin.json") as fh:
                procs.append(subprocess.Popen([sys.executable, "-c", CLI_AT, at, "run", "sobot_query_task_list"],
                                              stdin=fh, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=90) for p in procs]
        assert [p.returncode for p in procs] == [0] * 5, outs
        assert sandbox.sobot.token_requests == 1, [o[1][-300:] for o in outs]
    assert no_state_files()  # it all went to Redis
    values = b"".join(raw_client(redis_url).get(k) or b"" for k in raw_client(redis_url).keys("line-connector:*"))
    assert asset["app_key"].encode() not in values


def test_oauth_tokens_and_retry_keys_are_shared_across_processes(redis_url, line_sandbox, monkeypatch):
    raw_client(redis_url).flushdb()
    monkeypatch.setenv("LINE_CONNECTOR_STATE", redis_url)
    asset = line_sandbox.demo_assets()["line_oauth2_client_credentials"]
    key = "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
    for i in range(3):
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
            "to": "U%032x" % i, "messages": TEXT, **({"retry_key": key} if i == 0 else {})}})
        assert code == 0, err
    assert line_sandbox.line.token_requests == 1
    # the retry key's content is remembered in Redis: other content under it is refused before sending
    sent = len(line_sandbox.line.deliveries)
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
        "to": "U%032x" % 0, "messages": [{"type": "text", "text": "other"}], "retry_key": key}})
    assert code == 2 and "inputs.retry_key" in err and len(line_sandbox.line.deliveries) == sent
    assert no_state_files()
    r = raw_client(redis_url)
    stored = b"".join(r.keys("*")) + b"".join(r.get(k) or b"" for k in r.keys("*"))
    assert asset["client_secret"].encode() not in stored and key.encode() not in stored


# ------------------------------------------------------------------ outages
def test_an_outage_between_runs_fails_clearly_and_fetches_no_second_token(line_sandbox, monkeypatch):
    with RedisServer(args=["--requirepass", PASSWORD]) as server:
        url = "redis://:%s@127.0.0.1:%d/0" % (PASSWORD, server.port)
        monkeypatch.setenv("LINE_CONNECTOR_STATE", url)
        sobot = line_sandbox.demo_assets()["sobot"]
        line = line_sandbox.demo_assets()["line_oauth2_client_credentials"]
        stdin = {"asset": sobot, "inputs": {"task_start_time": 1714295033250, "page_size": 15}}
        assert run_cli("run", "sobot_query_task_list", stdin=stdin)[0] == 0
        assert line_sandbox.sobot.token_requests == 1
        server.kill()
        code, out, err = run_cli("run", "sobot_query_task_list", stdin=stdin)
        assert code == 1 and "Traceback" not in err and PASSWORD not in out + err
        assert "state store" in out and "unreachable" in out and "nothing was sent" in out
        assert json.loads(out)[-1]["delivery"] == "not sent"
        assert line_sandbox.sobot.token_requests == 1  # never a silent fallback that fetches again
        sent = len(line_sandbox.line.deliveries)
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": line, "inputs": {
            "to": "U" + "1" * 32, "messages": TEXT, "retry_key": "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"}})
        assert code == 1 and "unreachable" in out and PASSWORD not in out + err and "Traceback" not in err
        assert len(line_sandbox.line.deliveries) == sent and no_state_files()


class KillAfterFirstSend(HttpClient):
    """The real transport; the Redis server dies right after the first
    request's answer (a real kill, mid-run)."""

    server = None

    def send(self, request):
        result = super().send(request)
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.server.kill()
        return result


def test_an_outage_during_a_run_tells_what_was_sent(line_sandbox, monkeypatch):
    with RedisServer() as server:
        monkeypatch.setenv("LINE_CONNECTOR_STATE", server.url)
        asset = line_sandbox.demo_assets()["line_channel_access_token"]
        client = KillAfterFirstSend()
        client.server = server
        recipients = ["U%032x" % i for i in range(1200)]  # 3 chunks of at most 500
        with pytest.raises(ActionError) as exc:
            run_action("line_send_multicast", asset, {"to": recipients, "messages": TEXT,
                                                      "retry_key": "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"},
                       client=client)
        err = exc.value
        assert err.__cause__ is None and err.__context__ is None
        assert "unreachable" in err.message and "1 request(s) had been sent before" in err.message
        first, last = err.output[0], err.output[-1]
        assert first["status_code"] == 200 and last["delivery"] == "not sent" and not last["ok"]
        assert len(line_sandbox.line.deliveries) == 1  # the rest was not sent


def test_unreachable_redis_ends_a_run_quickly_without_the_password(tmp_path, monkeypatch):
    from redis_server import free_port

    url = "redis://user:%s@127.0.0.1:%d/0" % (PASSWORD, free_port())
    monkeypatch.setenv("LINE_CONNECTOR_STATE", url)
    started = time.monotonic()
    with pytest.raises(ActionError) as exc:
        run_action("line_send_push", {"token": "t" * 20}, {"to": "U" + "0" * 32, "messages": TEXT,
                                                           "retry_key": "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"})
    assert time.monotonic() - started < 20
    text = json.dumps(exc.value.output) + exc.value.message + repr(exc.value) + repr(state.store())
    assert PASSWORD not in text and "127.0.0.1" in text and "nothing was sent" in text


def test_a_wrong_redis_password_is_a_clear_failure_never_shown(monkeypatch):
    # SPEC 12 changed this from "exit 1, unreachable" (retry later) to a
    # configuration error: waiting never fixes a wrong password
    with RedisServer(args=["--requirepass", PASSWORD]) as server:
        wrong = "Wrong-Canary-Pass-3Jk2"
        monkeypatch.setenv("LINE_CONNECTOR_STATE", "redis://:%s@127.0.0.1:%d/0" % (wrong, server.port))
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": {"token": "t" * 20}, "inputs": {
            "to": "U" + "0" * 32, "messages": TEXT, "retry_key": "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"}})
        text = out + err
        assert code == 2 and "env.LINE_CONNECTOR_STATE" in text and "credentials" in text
        assert "unreachable" not in text and wrong not in text and "Traceback" not in err


# ------------------------------------------------------------ configuration
@pytest.mark.parametrize("url, words", [
    ("redis://", "host"), ("redis://127.0.0.1:99999/0", "port"), ("redis://127.0.0.1:6379/x", "database"),
    ("redis://u:%s@127.0.0.1:6379/0?ssl_cert_reqs=none" % PASSWORD, "query"),
    ("unix:///tmp/redis.sock", "not a state store this version knows"), ("redis://h:%s/0" % PASSWORD, "port"),
])
def test_invalid_urls_are_exit_2_naming_the_setting_never_the_password(url, words, monkeypatch):
    monkeypatch.setenv("LINE_CONNECTOR_STATE", url)
    with pytest.raises(InputError) as exc:
        run_action("line_send_push", {"token": "t" * 20}, {"to": "U" + "0" * 32, "messages": TEXT})
    (detail,) = exc.value.details
    assert detail["path"] == "env.LINE_CONNECTOR_STATE" and words in detail["message"]
    assert PASSWORD not in str(exc.value)
    code, out, err = run_cli("run", "line_get_bot_info", stdin={"asset": {"token": "t" * 20}, "inputs": {}})
    assert code == 2 and "env.LINE_CONNECTOR_STATE" in err and PASSWORD not in out + err and "Traceback" not in err
    monkeypatch.delenv("LINE_CONNECTOR_STATE")
    with pytest.raises(InputError) as exc:
        state.configure(url)
    assert exc.value.details[0]["path"] == "config.state" and PASSWORD not in str(exc.value)


def test_configure_selects_redis_for_the_process(redis_url, monkeypatch):
    monkeypatch.delenv("LINE_CONNECTOR_STATE", raising=False)
    assert type(state.store()).__name__ == "FileStore"
    state.configure(redis_url)
    found = state.store()
    assert type(found).__name__ == "RedisStore" and state.store() is found
    found.put("cfg", "k", 1, 60)
    assert raw_client(redis_url).keys("line-connector:cfg:*")
    state.configure(None)
    assert type(state.store()).__name__ == "FileStore"


def test_a_missing_redis_client_says_what_to_install(monkeypatch, redis_url):
    monkeypatch.setenv("LINE_CONNECTOR_STATE", redis_url)
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    with pytest.raises(InputError) as exc:
        run_action("line_get_bot_info", {"token": "t" * 20}, {})
    assert "pip install 'line-connector[service]'" in str(exc.value)
