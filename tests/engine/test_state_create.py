"""Entries of unsynced namespaces (``state.skip_fsync``: the LINE retry-key
records) are created in place when nothing is at their path, instead of a
temporary file renamed over it. The rules of tests/engine/test_state.py hold
for them too: a bad entry is absent and replaced, a symlink is never
followed, files stay private under any umask, and a half-written entry is
never read as one."""
import os
import stat

from line_connector import state
from line_connector.filecache import cache_dir

NS = "unsynced-test"
state.skip_fsync(NS)


def _entry_path(namespace):
    directory = os.path.join(cache_dir(), "state", namespace)
    (path,) = [os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")]
    return directory, path


def test_a_fresh_entry_is_created_in_place_private_under_umask_000(monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append(b), real_replace(a, b)))
    old = os.umask(0)
    try:
        state.store().put(NS, "k", {"sha256": "x"}, 60)
    finally:
        os.umask(old)
    directory, path = _entry_path(NS)
    assert renames == []                                  # no temporary file, no rename
    assert [n for n in os.listdir(directory) if n != ".swept"] == [os.path.basename(path)]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert state.store().get(NS, "k") == {"sha256": "x"}
    # an existing entry is replaced atomically, as every put of a synced namespace
    state.store().put(NS, "k", {"sha256": "y"}, 60)
    assert renames == [path] and state.store().get(NS, "k") == {"sha256": "y"}


def test_a_half_written_entry_reads_as_absent_and_is_replaced():
    store = state.store()
    store.put(NS, "k", 1, 60)
    _, path = _entry_path(NS)
    whole = open(path, "rb").read()
    for cut in range(len(whole)):                         # every prefix a crash or a reader could see
        with open(path, "wb") as fh:
            fh.write(whole[:cut])
        assert store.get(NS, "k") is None, cut
    assert store.add_if_absent(NS, "k", 2, 60) is None and store.get(NS, "k") == 2


def test_a_symlink_at_a_fresh_entrys_path_is_never_followed(tmp_path):
    store = state.store()
    store.put(NS, "k", "real", 60)
    _, path = _entry_path(NS)
    target = tmp_path / "target.json"
    target.write_text("not an entry")
    os.unlink(path)
    os.symlink(target, path)
    store.put(NS, "k", "new", 60)
    assert target.read_text() == "not an entry"           # untouched
    assert not os.path.islink(path) and store.get(NS, "k") == "new"


def test_a_failed_write_leaves_no_file(monkeypatch):
    store = state.store()
    store.put(NS, "other", 0, 60)                          # the directory exists
    directory, _ = _entry_path(NS)

    def full(fd, data):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "write", full)
        store.put(NS, "k", 1, 60)                          # degrades to memory, as any failed put
    assert [n for n in os.listdir(directory) if n != ".swept"] == [os.path.basename(_entry_path(NS)[1])]
    assert store.note and store.get(NS, "k") == 1


def test_private_dir_makes_repairs_or_refuses(tmp_path):
    """One check for every private directory (the file store's, and the
    shared directory of ``serve --workers``, which a worker must find as the
    parent left it: ``create=False, repair=False``)."""
    import errno

    import pytest

    made = str(tmp_path / "made")
    state.private_dir(made)
    assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
    os.chmod(made, 0o755)
    state.private_dir(made)  # the file store repairs its own directory's mode
    assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
    os.chmod(made, 0o775)
    with pytest.raises(state.StateError) as exc:  # opened to others since: files may have been planted
        state.private_dir(made, create=False, repair=False)
    assert exc.value.errno == errno.EPERM and stat.S_IMODE(os.lstat(made).st_mode) == 0o775
    with pytest.raises(FileNotFoundError):
        state.private_dir(str(tmp_path / "gone"), create=False)
    os.symlink(made, str(tmp_path / "link"))
    with pytest.raises(state.StateError) as exc:
        state.private_dir(str(tmp_path / "link"))
    assert exc.value.errno == errno.ELOOP
