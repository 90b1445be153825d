"""Record tables (issue 22, ``state.table_records``: the LINE retry-key
records). A tabled namespace keeps a small record in a slot of its key's
shared lock file instead of a new file per key (a new inode was the costliest
step of a keyed push). What the file store promises does not change: an add
is atomic across threads and processes, a record is seen at once by every
process, ``put`` replaces and ``delete`` removes it, an expired or damaged
record is absent, and a record that does not fit (a full page, a large value)
is an entry file as before."""
import json
import os
import subprocess
import sys
import threading

import pytest

from helpers import assert_threads_add_once
from line_connector import state
from line_connector.filecache import cache_dir

NS = "table-test"
state.table_records(NS)


def _dir():
    return os.path.join(cache_dir(), "state", NS)


def _entry_files():
    return sorted(n for n in os.listdir(_dir()) if n.endswith(".json"))


def _same_page_keys(n):
    """``n`` keys whose records share one lock file and one page."""
    first = state.key_hash(NS, "page-0")
    lock, page = int(first[:8], 16) % state.SHARED_LOCKS, state._table_page(first)
    keys, i = [], 0
    while len(keys) < n:
        key = "page-%d" % i
        h = state.key_hash(NS, key)
        if int(h[:8], 16) % state.SHARED_LOCKS == lock and state._table_page(h) == page:
            keys.append(key)
        i += 1
    return keys


def test_a_tabled_record_takes_a_slot_not_a_file_and_every_process_sees_it():
    store = state.store()
    assert store.add_shared(NS, "k", {"sha256": "x"}, 60) is None
    assert _entry_files() == []  # no file of its own
    assert store.add_shared(NS, "k", {"sha256": "y"}, 60) == {"sha256": "x"}
    assert store.get(NS, "k") == {"sha256": "x"}
    # another process: a store of its own on the same directory
    code = ("from line_connector import state; state.table_records(%r); s = state.store(); "
            "print(repr(s.get(%r, 'k'))); print(repr(s.add_shared(%r, 'k', {'sha256': 'z'}, 60)))" % (NS, NS, NS))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, LINE_CONNECTOR_CACHE_DIR=cache_dir()))
    assert out.stdout.split() == ["{'sha256':", "'x'}", "{'sha256':", "'x'}"]


def test_put_replaces_a_tabled_record_in_place_and_delete_frees_its_slot():
    store = state.store()
    assert store.add_shared(NS, "k", {"sha256": "x"}, 60) is None
    store.put(NS, "k", {"sha256": "x", "joined": True}, 60)
    assert store.get(NS, "k") == {"sha256": "x", "joined": True}
    assert _entry_files() == []
    store.delete(NS, "k")
    assert store.get(NS, "k") is None
    assert store.add_shared(NS, "k", {"sha256": "y"}, 60) is None  # the key is free again
    assert store.get(NS, "k") == {"sha256": "y"}


def test_an_expired_or_damaged_slot_is_absent_and_reused(monkeypatch):
    store = state.store()
    now = store.clock()
    assert store.add_shared(NS, "old", {"n": 1}, 60) is None
    monkeypatch.setattr(store, "clock", lambda: now + 120)
    assert store.get(NS, "old") is None
    assert store.add_shared(NS, "old", {"n": 2}, 60) is None
    assert store.get(NS, "old") == {"n": 2}
    # a damaged slot (a torn or foreign write) is no record
    h = state.key_hash(NS, "old")
    lock = os.path.join(_dir(), ".shared-%02d.lock" % (int(h[:8], 16) % state.SHARED_LOCKS))
    with open(lock, "r+b") as fh:
        data = fh.read()
        fh.seek(0)
        fh.write(data.replace(('"k":"%s"' % h).encode(), ('#k":"%s"' % h).encode()))
    assert store.get(NS, "old") is None
    assert store.add_shared(NS, "old", {"n": 3}, 60) is None


def test_a_full_page_spills_into_entry_files_and_stays_one_record_per_key():
    store = state.store()
    keys = _same_page_keys(state.TABLE_SLOTS + 3)
    for i, key in enumerate(keys):
        assert store.add_shared(NS, key, {"n": i}, 60) is None
    assert len(_entry_files()) == 3  # the page holds TABLE_SLOTS
    for i, key in enumerate(keys):
        assert store.add_shared(NS, key, {"n": -1}, 60) == {"n": i}
        assert store.get(NS, key) == {"n": i}
    # a slot freed: a spilled key still has its file, and is found there first
    store.delete(NS, keys[0])
    assert store.add_shared(NS, keys[-1], {"n": -1}, 60) == {"n": len(keys) - 1}
    store.delete(NS, keys[-1])
    assert store.get(NS, keys[-1]) is None and len(_entry_files()) == 2


def test_a_record_too_large_for_a_slot_is_an_entry_file():
    store = state.store()
    big = {"sha256": "x" * state.TABLE_SLOT}
    assert store.add_shared(NS, "big", big, 60) is None
    assert len(_entry_files()) == 1
    assert store.add_shared(NS, "big", {"sha256": "y"}, 60) == big
    store.put(NS, "small", {"n": 1}, 60)  # a put of a key with no slot: its file, as before
    assert store.add_shared(NS, "small", {"n": 2}, 60) == {"n": 1}


def test_a_put_that_no_longer_fits_its_slot_moves_the_record_to_a_file():
    store = state.store()
    assert store.add_shared(NS, "k", {"n": 1}, 60) is None
    big = {"sha256": "x" * state.TABLE_SLOT}
    store.put(NS, "k", big, 60)
    assert store.get(NS, "k") == big and len(_entry_files()) == 1
    assert store.add_shared(NS, "k", {"n": 2}, 60) == big


def test_threads_adding_one_tabled_key_add_it_once():
    store = state.store()
    assert_threads_add_once(store, NS, "contended")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="several processes at once: POSIX")
def test_processes_adding_the_same_keys_at_once_add_each_once():
    """Eight processes add the same 40 keys at once: each key is added by
    exactly one of them, and all see that one's record."""
    code = r"""
import json, sys
from line_connector import state
state.table_records(%r)
s = state.store()
sys.stdin.readline()
won = [k for k in range(40) if s.add_shared(%r, "key-%%d" %% k, {"by": sys.argv[1]}, 60) is None]
print(json.dumps(won))
""" % (NS, NS)
    env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=cache_dir())
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for n in range(8)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    won = [json.loads(p.communicate()[0]) for p in procs]
    assert sorted(k for w in won for k in w) == list(range(40))
    store = state.store()
    for n, keys in enumerate(won):
        for k in keys:
            assert store.get(NS, "key-%d" % k) == {"by": str(n)}


def test_a_removed_state_directory_is_made_again_for_a_tabled_add(tmp_path):
    import shutil

    root = str(tmp_path / "state")
    store = state.FileStore(root)
    assert store.add_shared(NS, "k1", {"v": 1}, 60) is None
    shutil.rmtree(root)
    assert store.add_shared(NS, "k2", {"v": 2}, 60) is None
    assert store.shared and store.note is None
    assert store.add_shared(NS, "k2", {"v": 3}, 60) == {"v": 2}
    assert state.FileStore(root).get(NS, "k2") == {"v": 2}  # on disk, for other processes
    assert state.FileStore(root).get(NS, "k1") is None  # removed with the directory


def _lock_of(store, key):
    return state._shared_lock_path(store, NS, state.key_hash(NS, key))


def _hold(store, key, seconds):
    """A thread of ``store`` holding ``key``'s table lock for ``seconds``;
    returns once it holds it."""
    held, done = threading.Event(), threading.Event()

    def hold():
        with store._locked(_lock_of(store, key), NS, key, 5, keep=True):
            held.set()
            done.wait(seconds)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    return t, done


def test_contention_with_a_zero_budget_still_reads_and_writes_the_table(monkeypatch):
    """A caller whose deadline is nearly used (budget 0) waits for a briefly
    held lock (TABLE_PATIENCE) rather than fall back to the entry file alone:
    get sees the slot's record, delete frees the slot, put replaces it."""
    store = state.store()
    assert store.add_shared(NS, "k", {"sha256": "x"}, 60) is None
    monkeypatch.setattr(state, "wait_budget", lambda cap=None: 0.0)
    t, _ = _hold(store, "k", 0.1)
    assert store.get(NS, "k") == {"sha256": "x"}
    t.join()
    t, _ = _hold(store, "k", 0.1)
    store.put(NS, "k", {"sha256": "x", "joined": True}, 60)
    t.join()
    assert store.get(NS, "k") == {"sha256": "x", "joined": True} and _entry_files() == []
    t, _ = _hold(store, "k", 0.1)
    store.delete(NS, "k")
    t.join()
    assert store.get(NS, "k") is None
    assert store.add_shared(NS, "k", {"sha256": "y"}, 60) is None  # corrected content is not refused


def test_a_stuck_holder_makes_get_put_delete_raise_never_disagree(monkeypatch):
    """Past TABLE_PATIENCE, get, put and delete raise LockTimeout: never a
    file written or removed while the slot keeps the old record."""
    store = state.store()
    assert store.add_shared(NS, "k", {"sha256": "x"}, 60) is None
    monkeypatch.setattr(state, "wait_budget", lambda cap=None: 0.0)
    monkeypatch.setattr(state, "TABLE_PATIENCE", 0.05)
    t, done = _hold(store, "k", 5)
    try:
        for op in (lambda: store.get(NS, "k"), lambda: store.put(NS, "k", {"sha256": "z"}, 60),
                   lambda: store.delete(NS, "k")):
            with pytest.raises(state.LockTimeout):
                op()
    finally:
        done.set()
        t.join()
    assert _entry_files() == []
    assert store.get(NS, "k") == {"sha256": "x"}


def test_get_and_delete_of_a_full_page_parse_no_other_slot(monkeypatch):
    """A full page: get and delete of a spilled key parse no slot, an add
    of a new key reads the others' expiry without parsing them."""
    store = state.store()
    keys = _same_page_keys(state.TABLE_SLOTS + 2)
    for i, key in enumerate(keys):
        assert store.add_shared(NS, key, {"n": i}, 60) is None
    parsed = []
    real = state._slot_entry
    monkeypatch.setattr(state, "_slot_entry", lambda slot, now: parsed.append(1) or real(slot, now))
    assert store.get(NS, keys[-1]) == {"n": len(keys) - 1}
    store.delete(NS, keys[-1])
    store.put(NS, keys[0], {"n": 0, "joined": True}, 60)
    assert parsed == [1]  # the put's own slot only
    assert store.add_shared(NS, keys[-1], {"n": -1}, 60) is None  # spills again: no free slot
    assert parsed == [1]


def test_an_expired_slot_of_the_same_page_is_reused_by_an_add(monkeypatch):
    store = state.store()
    keys = _same_page_keys(state.TABLE_SLOTS + 1)
    now = store.clock()
    for i, key in enumerate(keys[:-1]):
        assert store.add_shared(NS, key, {"n": i}, 60 if i else 10) is None
    monkeypatch.setattr(store, "clock", lambda: now + 30)
    assert store.add_shared(NS, keys[-1], {"n": -1}, 60) is None
    assert _entry_files() == []  # the expired slot took it
    assert store.get(NS, keys[-1]) == {"n": -1} and store.get(NS, keys[0]) is None


def test_a_key_added_again_after_its_slot_expired_reuses_that_slot(monkeypatch):
    """A clock stepped back never revives the key's old slot beside its new
    one: the add reuses the key's own expired slot."""
    store = state.store()
    now = store.clock()
    keys = _same_page_keys(2)
    assert store.add_shared(NS, keys[0], {"n": 1}, 60) is None
    monkeypatch.setattr(store, "clock", lambda: now + 120)
    assert store.add_shared(NS, keys[1], {"other": 1}, 600) is None  # takes a blank slot before it
    assert store.add_shared(NS, keys[0], {"n": 2}, 60) is None
    monkeypatch.setattr(store, "clock", lambda: now + 30)  # stepped back
    assert store.get(NS, keys[0]) == {"n": 2}
    h = state.key_hash(NS, keys[0])
    with open(_lock_of(store, keys[0]), "rb") as fh:
        assert fh.read().count(('"k":"%s"' % h).encode()) == 1


def test_a_short_slot_write_spills_the_record_into_an_entry_file(monkeypatch):
    store = state.store()
    real = os.pwrite
    monkeypatch.setattr(state.os, "pwrite", lambda fd, data, at: real(fd, data[:10], at))
    assert store.add_shared(NS, "k", {"sha256": "x"}, 60) is None
    monkeypatch.setattr(state.os, "pwrite", real)
    assert _entry_files() != []
    assert store.get(NS, "k") == {"sha256": "x"}
    assert store.add_shared(NS, "k", {"sha256": "y"}, 60) == {"sha256": "x"}


def test_a_state_directory_removed_during_an_add_gets_the_record(monkeypatch, tmp_path):
    import shutil

    root = str(tmp_path / "state")
    store = state.FileStore(root)
    assert store.add_shared(NS, "k1", {"v": 1}, 60) is None
    real, calls = os.pwrite, []

    def pwrite(fd, data, at):
        n = real(fd, data, at)
        if not calls:
            calls.append(1)
            shutil.rmtree(root)
        return n

    monkeypatch.setattr(state.os, "pwrite", pwrite)
    assert store.add_shared(NS, "k2", {"v": 2}, 60) is None
    monkeypatch.setattr(state.os, "pwrite", real)
    assert state.FileStore(root).get(NS, "k2") == {"v": 2}  # on disk, for other processes
    assert store.add_shared(NS, "k2", {"v": 3}, 60) == {"v": 2}
