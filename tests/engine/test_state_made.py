"""The journal of retry keys the pack makes itself (issue 22): a made key's
record is one appended line, not a file and a lock per key. The store rules
of tests/engine/test_state.py hold for it: an expired or damaged record is
absent, the journal is private, a symlink is never followed, and expired
journals are swept. Why a made key needs no lock: LINE remembers a retry key
per channel and only a request carrying it can be blocked by it
(https://developers.line.biz/en/docs/messaging-api/retrying-api-request/);
nobody but this call knows a UUID it just drew."""
import os
import re
import stat
import sys
import uuid

import pytest

from helpers import assert_threads_add_once
from line_connector import state
from line_connector.filecache import cache_dir

NS = "made-test"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def journals():
    directory = os.path.join(cache_dir(), "state", NS)
    return sorted(n for n in os.listdir(directory) if n.endswith(".jnl"))


def test_made_keys_are_uuid4s_whose_first_16_hex_digits_name_their_journal():
    store = state.store()
    keys = [store.made_key() for _ in range(5)]
    assert all(UUID4.match(k) for k in keys) and len(set(keys)) == 5
    assert len({k.replace("-", "")[:16] for k in keys}) == 1
    for key in keys:
        store.add_made(NS, key, "scope\n" + key, {"sha256": key}, 60)
    assert journals() == ["made-%s.jnl" % keys[0].replace("-", "")[:16]]
    directory = os.path.join(cache_dir(), "state", NS)
    assert not [n for n in os.listdir(directory) if n.endswith((".json", ".lock"))]  # no file per key
    for key in keys:
        assert store.get_made(NS, key, "scope\n" + key) == {"sha256": key}


def test_a_new_journal_every_journal_entries_keys(monkeypatch):
    monkeypatch.setattr(state, "JOURNAL_ENTRIES", 3)
    store = state.store()
    keys = [store.made_key() for _ in range(7)]
    assert len({k.replace("-", "")[:16] for k in keys}) == 3  # 3 + 3 + 1


def test_a_record_is_found_only_under_its_own_key_and_scope():
    store = state.store()
    key, other = store.made_key(), store.made_key()
    store.add_made(NS, key, "a\n" + key, {"sha256": "x"}, 60)
    assert store.get_made(NS, other, "a\n" + other) is None
    assert store.get_made(NS, key, "b\n" + key) is None  # another channel
    assert store.get_made(NS, str(uuid.uuid4()), "a\n" + key) is None  # another journal
    assert store.get_made(NS, "caller-key", "a\ncaller-key") is None  # not a made key: no journal


def test_expired_and_dropped_records_are_absent(monkeypatch):
    store = state.store()
    key = store.made_key()
    store.add_made(NS, key, key, {"sha256": "x"}, 60)
    store.drop_made(NS, key, key)
    assert store.get_made(NS, key, key) is None
    later = store.made_key()
    store.add_made(NS, later, later, {"sha256": "y"}, 60)
    now = state.Store.clock()
    monkeypatch.setattr(store, "clock", lambda: now + 61)
    assert store.get_made(NS, later, later) is None
    monkeypatch.setattr(store, "clock", lambda: now + 3600)  # the drop's own line expired too: still dropped
    assert store.get_made(NS, key, key) is None


def test_a_damaged_or_half_written_line_is_no_record():
    store = state.store()
    key, next_key = store.made_key(), store.made_key()
    store.add_made(NS, key, key, {"sha256": "x"}, 60)
    path = os.path.join(cache_dir(), "state", NS, journals()[0])
    with open(path, "rb") as fh:
        whole = fh.read()
    with open(path, "wb") as fh:  # a crash halfway through the only line
        fh.write(whole[:len(whole) // 2])
    assert store.get_made(NS, key, key) is None
    store.add_made(NS, next_key, next_key, {"sha256": "y"}, 60)  # appending after it still works
    assert store.get_made(NS, next_key, next_key) == {"sha256": "y"}
    with open(path, "ab") as fh:
        fh.write(b'{"v":1,"k":"%s","exp":NaN,"value":{"sha256":"z"}}\n' % state.key_hash(NS, key).encode())
    assert store.get_made(NS, key, key) is None


@pytest.mark.skipif(not hasattr(os, "umask") or sys.platform == "win32", reason="POSIX modes")
def test_the_journal_is_private_under_umask_000():
    old = os.umask(0)
    try:
        store = state.store()
        key = store.made_key()
        store.add_made(NS, key, key, {"sha256": "x"}, 60)
    finally:
        os.umask(old)
    path = os.path.join(cache_dir(), "state", NS, journals()[0])
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_a_symlink_at_the_journal_path_is_never_followed(tmp_path):
    store = state.store()
    key = store.made_key()
    store.add_made(NS, key, key, {"sha256": "x"}, 60)  # makes the directory
    path = os.path.join(cache_dir(), "state", NS, journals()[0])
    os.unlink(path)
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, path)
    store.add_made(NS, key, key, {"sha256": "x"}, 60)
    assert target.read_text() == ""
    assert store.get_made(NS, key, key) == {"sha256": "x"}  # kept in this process (degraded, with a note)
    assert store.note and "not usable" in store.note


def test_the_sweep_removes_journals_whose_records_all_expired(monkeypatch):
    store = state.store()
    old, live = store.made_key(), None
    store.add_made(NS, old, old, {"sha256": "x"}, 60)
    monkeypatch.setattr(state, "JOURNAL_ENTRIES", 1)
    live = store.made_key()
    store.add_made(NS, live, live, {"sha256": "y"}, 7200)
    assert len(journals()) == 2
    now = state.Store.clock()
    monkeypatch.setattr(store, "clock", lambda: now + 120)
    state._sweep_journals(os.path.join(cache_dir(), "state", NS), store.clock())
    assert journals() == ["made-%s.jnl" % live.replace("-", "")[:16]]
    assert store.get_made(NS, live, live) == {"sha256": "y"}


def test_other_backends_keep_made_records_as_entries():
    store = state.MemoryStore()
    key = store.made_key()
    assert UUID4.match(key)
    store.add_made(NS, key, "s\n" + key, {"sha256": "x"}, 60)
    assert store.get_made(NS, key, "s\n" + key) == {"sha256": "x"} == store.get(NS, "s\n" + key)
    store.drop_made(NS, key, "s\n" + key)
    assert store.get_made(NS, key, "s\n" + key) is None


def test_caller_key_adds_share_a_few_lock_files_and_stay_atomic():
    """Caller-given retry keys keep a record file each, but their atomic add
    (``add_shared``) locks one of SHARED_LOCKS files, not a file per key;
    of many threads adding one key, exactly one adds it."""
    store = state.store()
    for i in range(100):
        assert store.add_shared(NS, "key-%d" % i, {"n": i}, 60) is None
    assert store.add_shared(NS, "key-7", {"n": -1}, 60) == {"n": 7}
    names = os.listdir(os.path.join(cache_dir(), "state", NS))
    locks = [n for n in names if n.endswith(".lock")]
    assert 1 < len(locks) <= state.SHARED_LOCKS and all(n.startswith(".shared-") for n in locks)
    assert len([n for n in names if n.endswith(".json")]) == 100
    assert_threads_add_once(store, NS, "contended")


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="a C-level fork: Linux")
def test_a_fork_that_runs_no_python_hook_never_holds_the_parents_kept_lock(tmp_path):
    """A forked child must never use its parent's kept lock descriptor: an
    OS lock is per open file, so both would hold it at once and two
    processes could both add the same caller key. The fork here is libc's
    (as a C extension or uWSGI without py-call-osafterfork makes one), so no
    Python fork hook runs: only the pid tells the child apart."""
    import ctypes

    store = state.FileStore(str(tmp_path / "state"))
    ns = "retry_keys"
    assert store.add_shared(ns, "caller-key", {"v": 1}, 60) is None  # keeps a shared lock file open
    lock_path = os.path.join(store._dir(ns), ".shared-%02d.lock" % (
        int(state.key_hash(ns, "caller-key")[:8], 16) % state.SHARED_LOCKS))
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = ctypes.CDLL(None).fork()
    if pid == 0:  # the child: wait until the parent holds the lock, then try for 0.3 s
        try:
            os.read(go_r, 1)
            try:
                with store._locked(lock_path, ns, "caller-key", 0.3, keep=True):
                    os.write(out_w, b"held")
            except state.LockTimeout:
                os.write(out_w, b"waited")
        except BaseException:
            os.write(out_w, b"error")
        finally:
            os._exit(0)
    try:
        with store._locked(lock_path, ns, "caller-key", 5, keep=True):
            os.write(go_w, b"x")
            got = os.read(out_r, 16)
    finally:
        os.waitpid(pid, 0)
    assert got == b"waited"  # the parent's lock kept the child out


@pytest.mark.parametrize("add", ["add_shared", "add_if_absent"])
def test_a_removed_state_directory_is_made_again_for_a_caller_keys_lock(tmp_path, add):
    """The shared lock files stay open; after the state directory is
    removed (a cleanup job, a new volume) the next add makes it again and
    stays shared with the machine's other processes: never a fall back to
    this process only."""
    import shutil

    root = str(tmp_path / "state")
    store = state.FileStore(root)
    assert getattr(store, add)("retry_keys", "k1", {"v": 1}, 60) is None
    shutil.rmtree(root)
    assert getattr(store, add)("retry_keys", "k2", {"v": 2}, 60) is None
    assert store.shared and store.note is None
    assert getattr(store, add)("retry_keys", "k2", {"v": 3}, 60) == {"v": 2}
    assert state.FileStore(root).get("retry_keys", "k2") == {"v": 2}  # on disk, for other processes


def _held_by_another_thread(lock):
    """Start a thread that takes ``lock`` and keeps it until the returned
    event is set: a fork meanwhile copies it held."""
    import threading

    taken, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            taken.set()
            done.wait(10)
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    return done, thread


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX")
@pytest.mark.parametrize("which", ["file store guard", "memory store guard", "bucket files guard",
                                   "bucket memory guard", "a key's thread lock"])
def test_a_child_forked_while_another_thread_held_a_store_lock_can_use_the_store(tmp_path, which):
    """A fork copies a lock that another thread of the parent holds, held,
    and that thread does not exist in the child: without new locks after the
    fork the child's first put, token take or slot take would wait forever
    (a threaded engine that forks workers). The child here must finish its
    store work within 5 s."""
    import time as _time

    root = str(tmp_path / "state")
    store = state.FileStore(root)
    memory = state.MemoryStore()
    store.put("retry_keys", "before", {"v": 0}, 60)
    lock_path = os.path.join(store._dir("retry_keys"), "some.lock")
    lock = {"file store guard": store._guard, "memory store guard": memory._guard,
            "bucket files guard": state._BUCKET_FILES_GUARD, "bucket memory guard": state._BUCKET_MEMORY_GUARD,
            "a key's thread lock": store._thread_locks.setdefault(lock_path, __import__("threading").Lock())}[which]
    done, thread = _held_by_another_thread(lock)
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            store.put("retry_keys", "after", {"v": 1}, 60)
            assert store.get("retry_keys", "after") == {"v": 1}
            memory.put("retry_keys", "after", {"v": 1}, 60)
            with memory.lock("retry_keys", "k", 1):
                pass
            with store._locked(lock_path, "retry_keys", "k", 1):
                pass
            assert store.take_token("bucket", 100.0, 10.0, 1.0) is None
            assert memory.take_token("bucket", 100.0, 10.0, 1.0) is None
            token = store.take_slot("audience", 2, 5)
            assert token is not None
            store.release_slot("audience", token)
            os.write(out_w, b"ok")
        except BaseException as exc:
            os.write(out_w, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    try:
        os.close(out_w)
        end = _time.monotonic() + 5
        alive = True
        while alive and _time.monotonic() < end:
            alive = os.waitpid(pid, os.WNOHANG) == (0, 0)
            if alive:
                _time.sleep(0.02)
        if alive:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        got = os.read(out_r, 256)
    finally:
        done.set()
        thread.join(5)
    assert not alive, "the child hung on a lock its parent's thread held at the fork"
    assert got == b"ok"
