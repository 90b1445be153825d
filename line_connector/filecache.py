"""A tiny JSON cache shared between processes (the CLI is one process per
action, and some vendors' tokens must be shared).

* lives in ``$LINE_CONNECTOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/line-connector``,
  else ``~/.cache/line-connector`` (``%LOCALAPPDATA%`` on Windows);
* the directory is 0700 and every file 0600 from its creation;
* ``locked()`` holds an exclusive OS lock on a side file for the whole
  read-modify-write, so two processes never both refresh a token;
* writes are atomic (temp file + ``os.replace``): a reader never sees half a file.
"""
import contextlib
import json
import os
import tempfile
import threading

_THREAD_LOCKS = {}
_GUARD = threading.Lock()


def cache_dir():
    explicit = os.environ.get("LINE_CONNECTOR_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA") \
        or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "line-connector")


def _lock_file(fh):
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        return lambda: fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except ImportError:  # Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
        return lambda: (fh.seek(0), msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1))


class FileCache:
    def __init__(self, name):
        self.dir = cache_dir()
        self.path = os.path.join(self.dir, name + ".json")
        self.lock_path = self.path + ".lock"
        with _GUARD:
            self._thread_lock = _THREAD_LOCKS.setdefault(self.path, threading.Lock())

    def _ensure_dir(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)

    @contextlib.contextmanager
    def locked(self):
        """Exclusive access across threads and processes; yields a dict that
        is written back (atomically) if the block changes it."""
        self._ensure_dir()
        with self._thread_lock:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            with os.fdopen(fd, "r+") as fh:
                unlock = _lock_file(fh)
                try:
                    data = self._read()
                    before = json.dumps(data, sort_keys=True)
                    yield data
                    if json.dumps(data, sort_keys=True) != before:
                        self._write(data)
                finally:
                    unlock()

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}  # absent or damaged: start afresh (it only holds caches)

    def _write(self, data):
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
