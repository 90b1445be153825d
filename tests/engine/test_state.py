"""The state store (SPEC 8; issue 12 item 6): one place for what processes
share, with per-key bounded locks, validated entries, private files, and a
private directory for --sandbox runs."""
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import TEXT, run_cli
from line_connector import InputError, run_action, state
from line_connector.filecache import cache_dir
from line_connector.sandbox import Sandbox


def files_under(path):
    found = []
    for root, dirs, names in os.walk(path):
        found += [os.path.join(root, n) for n in names]
    return found


def test_put_get_ttl_and_json_only():
    store = state.store()
    store.put("t", "k", {"a": [1, "x"]}, 60)
    assert store.get("t", "k") == {"a": [1, "x"]} and store.get("t", "other") is None
    store.clock = lambda: time.time() + 61  # TTLs are enforced on read
    assert store.get("t", "k") is None
    del store.clock
    with pytest.raises(ValueError):
        store.put("t", "k", {"x": float("nan")}, 60)
    for ttl in (0, -1, float("nan"), float("inf"), None):
        with pytest.raises(ValueError):
            store.put("t", "k", 1, ttl)
    store.delete("t", "k")
    assert store.get("t", "k") is None


def test_files_and_directories_are_private_under_umask_000():
    old = os.umask(0)
    try:
        state.store().put("perm", "k", 1, 60)
        with state.store().lock("perm", "k", 1):
            pass
    finally:
        os.umask(old)
    for root, dirs, names in os.walk(cache_dir()):
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, root
        for name in names:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, name


def test_a_lock_wait_is_bounded_and_names_the_cause():
    store = state.store()
    with store.lock("slow", "tenant-a", 1):
        started = time.monotonic()
        with pytest.raises(state.LockTimeout) as exc:
            with store.lock("slow", "tenant-a", 0.5):
                pass
        assert time.monotonic() - started < 10
        assert "slow" in str(exc.value) and "holding" in str(exc.value)
        with store.lock("slow", "tenant-b", 0.5):  # another key is never blocked
            pass


LOCKER = textwrap.dedent("""
    import sys, time
    from line_connector import state
    with state.store().lock("xproc", sys.argv[1], 5):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_locks_hold_across_processes_and_per_key():
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, "key-1", "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(state.LockTimeout):
            with state.store().lock("xproc", "key-1", 0.5):
                pass
        with state.store().lock("xproc", "key-2", 0.5):
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    with state.store().lock("xproc", "key-1", 5):  # released when its holder dies
        pass


ADDER = textwrap.dedent("""
    import sys
    from line_connector import state
    print("won" if state.store().add_if_absent("race", "one-key", {"by": sys.argv[1]}, 60, wait=30) is None
          else "lost")
""")


def test_add_if_absent_is_atomic_across_processes():
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(i)], stdout=subprocess.PIPE, text=True)
             for i in range(6)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost"] * 5 + ["won"]


def test_a_bad_entry_is_absent_and_replaced():
    store = state.store()
    store.put("bad", "k", 1, 60)
    directory = os.path.join(cache_dir(), "state", "bad")
    (path,) = [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")]
    for junk in (b"", b"\xff\xfe", b"[" * 200000, b'{"v":1,"k":"x","exp":1e300,"value":1}', b"NaN",
                 b"x" * (state.MAX_ENTRY_BYTES + 10)):
        with open(path, "wb") as fh:
            fh.write(junk)
        assert store.get("bad", "k") is None
        assert store.add_if_absent("bad", "k", 2, 60) is None and store.get("bad", "k") == 2


def test_a_symlinked_entry_is_never_followed(tmp_path):
    store = state.store()
    store.put("link", "k", "real", 60)
    directory = os.path.join(cache_dir(), "state", "link")
    (path,) = [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")]
    target = tmp_path / "target.json"
    target.write_text(open(path).read())
    os.unlink(path)
    os.symlink(target, path)
    assert store.get("link", "k") is None           # a link is not an entry
    store.put("link", "k", "new", 60)
    assert target.read_text().count("real") == 1     # untouched
    assert not os.path.islink(path) and store.get("link", "k") == "new"


def test_unknown_or_unavailable_backends_are_exit_2(monkeypatch):
    for setting, words in (("redis://127.0.0.1:notaport/0", "port"), ("memcached://x", "not a state store this version knows"),
                           ("nonsense", "not a state store this version knows"), ("file:/x", "takes no path")):
        monkeypatch.setenv("LINE_CONNECTOR_STATE", setting)
        with pytest.raises(InputError) as exc:
            run_action("line_send_push", {"token": "t"}, {"to": "U" + "0" * 32, "messages": TEXT})
        assert exc.value.details[0]["path"] == "env.LINE_CONNECTOR_STATE" and words in exc.value.details[0]["message"]
    code, out, err = run_cli("run", "line_get_bot_info", stdin={"asset": {"token": "t"}, "inputs": {}})
    assert code == 2 and "env.LINE_CONNECTOR_STATE" in out + err and "Traceback" not in err


def test_file_setting_any_case_and_config_wins_and_nothing_is_echoed(monkeypatch):
    """``file:`` in any case means files; the service config's ``state: file:``
    wins over LINE_CONNECTOR_STATE; a setting that is not understood is never
    quoted back (a mistyped one may hold a password)."""
    from line_connector import state

    monkeypatch.setenv("LINE_CONNECTOR_STATE", "FILE:")
    assert isinstance(state.store(), state.FileStore)
    monkeypatch.setenv("LINE_CONNECTOR_STATE", "redis://127.0.0.1:1/0")
    state.configure("file:")
    assert isinstance(state.store(), state.FileStore)
    state.forget()
    monkeypatch.setenv("LINE_CONNECTOR_STATE", "hunter2Secret:x@y")
    with pytest.raises(InputError) as exc:
        state.store()
    assert "hunter2" not in json.dumps(exc.value.details).lower()


def test_sandbox_runs_leave_the_users_cache_alone(tmp_path, monkeypatch):
    home, cache, xdg = tmp_path / "home", tmp_path / "cache", tmp_path / "xdg"
    for d in (home, cache, xdg):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(cache / "line-connector"))
    with Sandbox() as sb:
        run_action("sobot_get_token", {}, {}, sandbox=sb)
        oauth = sb.demo_assets()["line_oauth2_client_credentials"]
        run_action("line_send_push", oauth, {"to": "U" + "1" * 32, "messages": TEXT,
                                             "retry_key": "6f1b7c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"}, sandbox=sb)
        assert sb.line.token_requests == 1 and sb.sobot.token_requests == 1
        # several runs against one sandbox share its private state, as runs against LINE would
        run_action("sobot_get_token", {}, {}, sandbox=sb)
        assert sb.sobot.token_requests == 1
    code, out, err = run_cli("run", "--sandbox", "sobot_get_token", stdin={"asset": {}, "inputs": {}})
    assert code == 0, err
    code, out, err = run_cli("run", "--sandbox", "line_send_push", stdin={"asset": {}, "inputs": {
        "to": "U" + "2" * 32, "messages": TEXT}})
    assert code == 0, err
    assert files_under(home) == [] and files_under(xdg) == []
    assert [f for f in files_under(cache) if os.sep + "state" + os.sep in f] == []


def test_oauth_tokens_are_shared_across_processes_and_the_secret_never_written(line_sandbox):
    asset = line_sandbox.demo_assets()["line_oauth2_client_credentials"]
    for i in range(3):
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
            "to": "U%032x" % i, "messages": TEXT}})
        assert code == 0, err
    assert line_sandbox.line.token_requests == 1
    texts = [open(f, "rb").read() for f in files_under(os.path.join(cache_dir(), "state"))]
    assert texts and not any(asset["client_secret"].encode() in t for t in texts)


def test_oauth_expires_in_is_clamped(line_sandbox, monkeypatch):
    """LINE's stateless tokens live 15 min, short-lived ones 30 days
    (https://developers.line.biz/en/reference/messaging-api/#issue-stateless-channel-access-token):
    an absurd expires_in is clamped, never stored as NaN or forever."""
    from line_connector.actions.line.auth import MAX_LIFETIME, ClientCredentials

    assert state.clamp_lifetime(1e308, 900, 1, MAX_LIFETIME) == MAX_LIFETIME
    assert state.clamp_lifetime(float("nan"), 900, 1, MAX_LIFETIME) == 900
    assert state.clamp_lifetime(None, 900, 1, MAX_LIFETIME) == 900
    assert state.clamp_lifetime(-5, 900, 1, MAX_LIFETIME) == 1
    assert state.clamp_lifetime("1e400", 900, 1, MAX_LIFETIME) == MAX_LIFETIME
    assert repr(ClientCredentials("u", "c", "cs-Canary-Secret", None)).count("cs-Canary-Secret") == 0


def test_an_unusable_directory_degrades_to_memory_with_a_note(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(blocker / "sub"))
    store = state.store()
    store.put("d", "k", 1, 60)
    assert store.get("d", "k") == 1 and not store.shared and "this process only" in store.note
    with store.lock("d", "k", 1):
        with pytest.raises(state.LockTimeout):
            with store.lock("d", "k", 0.2):
                pass


def test_threads_share_the_store_and_one_add_wins():
    store = state.store()
    wins = []
    barrier = threading.Barrier(8)

    def add(i):
        barrier.wait()
        if store.add_if_absent("threads", "k", i, 60) is None:
            wins.append(i)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1 and store.get("threads", "k") == wins[0]


def test_expired_entries_are_swept_at_most_hourly():
    store = state.store()
    for i in range(5):
        store.put("sweep", "old-%d" % i, i, 1)
    directory = os.path.join(cache_dir(), "state", "sweep")
    marker = os.path.join(directory, ".swept")
    store.clock = lambda: time.time() + 10
    store.put("sweep", "fresh", 1, 60)                   # swept within the hour: nothing removed
    assert len([n for n in os.listdir(directory) if n.endswith(".json")]) == 6
    state.FileStore._swept.clear()
    os.utime(marker, (time.time() - 7200, time.time() - 7200))
    store.put("sweep", "fresh-2", 1, 60)
    left = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    assert len(left) == 2 and all(n.endswith(".json") for n in left)
    assert store.get("sweep", "fresh") == 1 and store.get("sweep", "fresh-2") == 1


def test_the_sweep_never_removes_an_entry_while_an_add_holds_its_shared_lock(tmp_path):
    """``add_shared`` holds one of the SHARED_LOCKS files, not the key's own
    lock, while it reads an expired entry and writes a fresh one in its
    place; a sweep (of any process) that judged the old entry expired must
    not unlink the fresh one. Here another store on the same directory (as
    another process) holds the key's shared lock: the sweep leaves the entry
    alone, and removes it once the lock is free."""
    root = str(tmp_path / "state")
    adder, sweeper = state.FileStore(root), state.FileStore(root)
    assert adder.add_shared("sweep-shared", "k", {"v": 1}, 60) is None
    directory = os.path.join(root, "sweep-shared")
    khash = state.key_hash("sweep-shared", "k")
    entry = os.path.join(directory, khash + ".json")
    adder.put("sweep-shared", "k", {"v": 1}, 60)  # as a file, whatever the namespace's layout
    sweeper.clock = lambda: time.time() + 3600     # expired, to the sweeper
    shared = os.path.join(directory, ".shared-%02d.lock" % (int(khash[:8], 16) % state.SHARED_LOCKS))
    with adder._locked(shared, "sweep-shared", "k", 5, keep=True):
        state.FileStore._swept.clear()
        sweeper._maybe_sweep("sweep-shared", every=0.0)
        assert os.path.exists(entry)
    state.FileStore._swept.clear()
    sweeper._maybe_sweep("sweep-shared", every=0.0)
    assert not os.path.exists(entry)
