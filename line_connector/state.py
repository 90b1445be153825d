"""The state store: the one place for what processes must share.

The CLI runs one process per action, yet some state must outlive it and be
seen by every other process: Sobot tokens (Sobot invalidates the old token on
every fetch, so fetching per process breaks the others), OAuth tokens, the
content sent under each LINE retry key (SPEC 7), webhook event ids and service
idempotency records (SPEC 8).

Every backend has the same small interface:

* ``get(namespace, key)`` -> the JSON value, or None (absent, expired or bad);
* ``put(namespace, key, value, ttl)``: store a JSON value for ``ttl`` seconds
  (``EntryTooLarge`` when its entry, as encoded, would pass ``MAX_ENTRY_BYTES``:
  written, it would read back as damaged);
* ``delete(namespace, key)``;
* ``add_if_absent(namespace, key, value, ttl, wait)`` -> None if stored, else
  the value already there (atomic: two processes never both "add");
* ``lock(namespace, key, wait)``: a context manager holding an exclusive
  per-key lock; raises ``LockTimeout`` after ``wait`` seconds, never blocks
  forever, and one key's holder never blocks another key.

TTLs are enforced on read (an expired entry is absent). Keys are arbitrary
strings; callers put a hash of the credentials in them so an entry never
serves another asset. The store hashes the key again for the file name (or
Redis key) and keeps that hash in the entry, so an entry copied or renamed
under another key is refused. Any operation may raise ``StateUnavailable``
when a shared backend (Redis) cannot be reached.

Backends, chosen by ``store()``: ``state.configure(url)`` (the service
config's ``state:``) wins, then ``LINE_CONNECTOR_STATE`` (unset or ``file:``:
files; ``redis://HOST:PORT/DB`` or ``rediss://``: Redis, see
``line_connector.state_redis``, so processes on several machines share one
Sobot token), then files. A ``--sandbox`` run's private scope wins over all.

Redis backend: shared by every process on every machine. When Redis cannot
be reached, an operation raises ``StateUnavailable`` and the runner fails the
action clearly (exit 1): it never falls back to files or memory, which would
fetch a second Sobot token and forget retry keys.

File backend (the default): ``<cache dir>/state/<namespace>/<sha256>.json``
plus a ``.lock`` file per key (a namespace given to ``table_records`` keeps
small records in slots of a few shared lock files instead), the directories
0700 and files 0600 whatever the umask, every open with ``O_NOFOLLOW`` and a
symlink at any of those paths refused. A damaged entry (bad JSON, wrong
shape, NaN, too large, too deep) is dropped, never raised. When the directory cannot be used (unwritable, a
symlink, owned by someone else) the store degrades to an in-process memory
store and says so in ``note``; the runner copies that note into the result.
"""
import contextlib
import contextvars
import errno
import hashlib
import json
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import time
import uuid
import weakref

from .errors import InputError

#: the lock wait used when a caller passes no finite wait
DEFAULT_WAIT = 30.0
#: an entry file larger than this is damaged, not data
MAX_ENTRY_BYTES = 1024 * 1024
ENV_STATE = "LINE_CONNECTOR_STATE"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: what open(O_NOFOLLOW) raises on a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD), EFTYPE (NetBSD)
_SYMLINK_ERRNOS = tuple(getattr(errno, n) for n in ("ELOOP", "EMLINK", "EFTYPE") if hasattr(errno, n))
_NS_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
#: namespaces whose file entries are written without ``fsync`` (see ``skip_fsync``)
_UNSYNCED = set()
#: namespaces whose small records the file store keeps in table slots (see ``table_records``)
_TABLED = set()


def skip_fsync(namespace):
    """Write the file store's entries of ``namespace`` without ``fsync``.

    For records whose loss is harmless: a LINE retry-key record lost to a
    power cut only makes a later answer more careful ("delivery unknown" on
    a 409), never a double send. The write stays atomic (a temporary file
    renamed over the entry) and is visible to every process at once; only
    durability across a crash of the machine is given up, for about 1 ms
    per send (an fsync is the most expensive step of a push)."""
    _check_ns(namespace)
    _UNSYNCED.add(namespace)


def table_records(namespace):
    """Keep the file store's records of ``namespace`` in slots of its shared
    lock files (see "Record tables" near ``SHARED_LOCKS``) rather than in a
    new file per key, when they fit; implies ``skip_fsync``.

    For small records whose loss is harmless, added by ``add_shared``: a
    LINE retry key's record. A new file is a new inode, the costliest step
    of a keyed push (12 us to 0.4 ms of kernel CPU on a busy ext4); a slot
    is a write into a file that exists. Every operation of the namespace
    (``get``, ``put``, ``delete``, ``add_shared``) reads or writes the slots
    under the key's shared lock, so what other processes see, and the
    atomicity of ``add_shared``, are as with files.

    Not seen by the previous release: a process of the release before the
    tables, sharing this state directory at the same time, looks only for
    entry files, so it cannot see records kept in slots. LINE's 409 still
    prevents a double delivery; only that release's refusal before sending
    of a key reused for other content is lost, for keys recorded by this one."""
    skip_fsync(namespace)
    _TABLED.add(namespace)


class LockTimeout(Exception):
    """A per-key lock stayed held past the bounded wait."""

    def __init__(self, namespace, waited):
        super().__init__("waited %.1f s for the %s lock: another process or thread is still holding it "
                         "(for example, fetching a token from a slow server); try again later"
                         % (waited, namespace))
        self.namespace = namespace
        self.waited = waited


class StateUnavailable(Exception):
    """The shared state store (Redis) cannot be reached. Deliberately no
    fallback: a private store would fetch a second Sobot token (invalidating
    everyone else's) and forget retry keys. The message names host and port
    only, never the URL (it may carry a password)."""


class StateMisconfigured(InputError):
    """The shared state store answers, but must not be used as configured:
    it refuses the URL's credentials (WRONGPASS, NOAUTH, NOPERM) or it evicts
    keys (``maxmemory-policy`` other than ``noeviction``: an evicted
    idempotency record or retry-key memory is a message sent twice). A
    configuration error (exit 2 naming the setting), never "retry later"."""


class EntryTooLarge(ValueError):
    """A value whose stored entry (as the store encodes it) would be larger
    than ``MAX_ENTRY_BYTES``: refused before writing, because it would be
    read back as damaged (absent), silently."""

    def __init__(self, size):
        super().__init__("the entry would take %d bytes as stored; the limit is %d" % (size, MAX_ENTRY_BYTES))
        self.size = size


def check_entry_size(data):
    """``data`` (the encoded entry, bytes) or EntryTooLarge: every backend
    measures what it will actually write (JSON with \\uXXXX escapes: a CJK
    character takes 6 bytes there, 3 in UTF-8)."""
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(len(data))
    return data


class StateError(OSError):
    """The file backend cannot use its directory (raised internally; the
    store then degrades to memory)."""


def wait_budget(cap=None):
    """Seconds a lock may be waited for: what the action's deadline leaves
    (``line_connector.http.time_left``), never negative, optionally capped."""
    from .http import time_left

    left = time_left()
    left = max(0.0, left) if _finite(left) else DEFAULT_WAIT
    return min(left, cap) if cap is not None else left


def _check_ns(namespace):
    if not namespace or not set(namespace) <= _NS_OK:
        raise ValueError("namespace must be [a-z0-9_-]+")


def key_hash(namespace, key):
    return hashlib.sha256(("%s\n%s" % (namespace, key)).encode("utf-8", "surrogatepass")).hexdigest()


#: one encoder for every entry (``json.dumps`` with options builds one per call)
_ENTRY_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), sort_keys=True)


def _dumps(value):
    # strict JSON: a NaN never reaches a file another process must parse
    return _ENTRY_ENCODER.encode(value)


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _valid_entry(data, khash, now):
    """The value of a well-formed, unexpired entry for this key, else None."""
    if not isinstance(data, dict) or data.get("v") != 1 or data.get("k") != khash:
        return None
    exp = data.get("exp")
    if not _finite(exp) or exp <= now or "value" not in data:
        return None
    return data


class Store:
    """The interface every backend implements (see the module docstring)."""

    #: False when state is only shared within this process (degraded)
    shared = True
    #: why the store is not shared, for the result's ``note``; None when fine
    note = None
    clock = staticmethod(time.time)

    def get(self, namespace, key):
        raise NotImplementedError

    def put(self, namespace, key, value, ttl):
        raise NotImplementedError

    def delete(self, namespace, key):
        raise NotImplementedError

    def lock(self, namespace, key, wait):
        raise NotImplementedError

    def ping(self):
        """Raise (``StateUnavailable``, ``StateMisconfigured``) unless the
        store answers now: the service's ``/readyz``."""
        self.get("health", "ping")

    def add_if_absent(self, namespace, key, value, ttl, wait=None):
        """Store ``value`` unless a live entry exists: None when stored, else
        the existing value. Atomic across processes (under the key's lock)."""
        with self.lock(namespace, key, wait_budget() if wait is None else wait):
            existing = self.get(namespace, key)
            if existing is not None:
                return existing
            self.put(namespace, key, value, ttl)
            return None

    def take_token(self, key, rate, burst, max_wait):
        """Take one token of the bucket ``key`` (refilled at ``rate`` per
        second up to ``burst``): None when one was there, the seconds until
        its turn (reserved: waiters are served in order) when it was empty,
        or minus the seconds it would take when that is past ``max_wait``
        (nothing reserved). This process only, unless a backend overrides it."""
        return _memory_take(self, key, rate, burst, max_wait)

    def take_slot(self, key, limit, lease):
        """Take one of the ``limit`` slots of ``key`` (a concurrency limit,
        e.g. LINE's per-audience one): a token when one was free, held until
        ``release_slot`` or for ``lease`` seconds at most (a holder that
        crashed cannot keep it), else None. Never waits for a slot (the
        file store waits up to SLOT_LOCK_PATIENCE for its file's lock). This
        process only, unless a backend overrides it."""
        return _memory_take_slot(self, key, limit, lease)

    def release_slot(self, key, token):
        """Give back the slot ``token`` of ``key`` (unknown or lapsed: nothing)."""
        _memory_release_slot(self, key, token)

    def add_shared(self, namespace, key, value, ttl, wait=None):
        """``add_if_absent`` for keys whose lock is held only for the add (a
        read and a write): backends may let a few keys share a lock."""
        return self.add_if_absent(namespace, key, value, ttl, wait)

    # pack-made retry keys (see "pack-made retry keys" below): backends
    # without journals (memory, Redis) keep made records as entries
    def made_key(self):
        """A fresh retry key (a random UUID4) whose record ``add_made`` keeps."""
        return str(uuid.uuid4())

    def add_made(self, namespace, made, key, value, ttl):
        """Record ``value`` under ``key`` for a key ``made`` by ``made_key()``
        of this store (no other call can know it, so no lock is taken)."""
        self.put(namespace, key, value, ttl)

    def get_made(self, namespace, made, key):
        """The live record ``add_made`` kept under ``key``, else None. ``made``
        may be any string (a caller's key): then there is none."""
        return self.get(namespace, key)

    def drop_made(self, namespace, made, key):
        """Release a made key's record (an accepted-never request)."""
        self.delete(namespace, key)

    @staticmethod
    def _ttl(ttl):
        if not _finite(ttl) or ttl <= 0:
            raise ValueError("ttl must be a positive finite number of seconds")
        return float(ttl)


class MemoryStore(Store):
    """Shared by the threads of one process only: the fallback when no
    directory can be used, and the model for what other backends promise."""

    shared = False

    def __init__(self, note=None):
        self.note = note
        self._data = {}
        self._guard = threading.Lock()
        self._locks = {}
        _LIVE_STORES.add(self)

    def _after_fork(self):
        """In a forked child: locks no thread of the child holds (see
        ``_after_fork_in_child``)."""
        self._guard = threading.Lock()
        self._locks = {}

    def get(self, namespace, key):
        _check_ns(namespace)
        khash = key_hash(namespace, key)
        with self._guard:
            entry = _valid_entry(self._data.get(khash), khash, self.clock())
            return None if entry is None else json.loads(_dumps(entry["value"]))

    def put(self, namespace, key, value, ttl):
        _check_ns(namespace)
        khash = key_hash(namespace, key)
        text = check_entry_size(_dumps({"v": 1, "k": khash, "exp": 0.0, "value": value}).encode("utf-8"))
        entry = {"v": 1, "k": khash, "exp": self.clock() + self._ttl(ttl), "value": json.loads(text)["value"]}
        with self._guard:
            self._data[khash] = entry

    def delete(self, namespace, key):
        with self._guard:
            self._data.pop(key_hash(namespace, key), None)

    @contextlib.contextmanager
    def lock(self, namespace, key, wait):
        _check_ns(namespace)
        khash = key_hash(namespace, key)
        with self._guard:
            lk = self._locks.setdefault(khash, threading.Lock())
        started = time.monotonic()
        if not lk.acquire(timeout=max(0.0, float(wait))):
            raise LockTimeout(namespace, time.monotonic() - started)
        try:
            yield
        finally:
            lk.release()


try:
    import fcntl as _fcntl
except ImportError:  # Windows
    _fcntl = None


def _os_lock(fd):
    """Try once to take an exclusive OS lock on ``fd``; True on success."""
    fcntl = _fcntl
    if fcntl is None:  # Windows
        import msvcrt

        try:
            os.lseek(fd, 0, 0)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def _os_unlock(fd):
    if _fcntl is None:
        import msvcrt

        os.lseek(fd, 0, 0)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    _fcntl.flock(fd, _fcntl.LOCK_UN)


class FileStore(Store):
    """Files in a private directory; see the module docstring for the rules."""

    def __init__(self, root):
        self.root = root
        self._fallback = None
        self._guard = threading.Lock()
        self._thread_locks = {}
        self._ready = set()
        #: open descriptors of the shared lock files (``_locked(keep=True)``),
        #: closed when the store is collected or the process forks (a child
        #: sharing them would share their OS locks with its parent)
        self._kept_fds = {}
        self._kept_gen = os.getpid()
        weakref.finalize(self, _close_kept, self._kept_fds)
        _LIVE_STORES.add(self)

    def _after_fork(self):
        """In a forked child: thread locks no thread of the child holds
        (see ``_after_fork_in_child``); the kept descriptors are dropped by
        their pid tag, on first use."""
        self._guard = threading.Lock()
        self._thread_locks = {}

    # ---------------------------------------------------------- degradation
    @property
    def note(self):
        return self._fallback.note if self._fallback is not None else None

    @property
    def shared(self):
        return self._fallback is None

    def _degrade(self, exc):
        with self._guard:
            if self._fallback is None:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                self._fallback = MemoryStore(
                    "state directory %s is not usable (%s): tokens and retry-key memory are kept in this "
                    "process only, not shared with other processes" % (self.root, reason))
        return self._fallback

    # ------------------------------------------------------------ the paths
    def _dir(self, namespace):
        _check_ns(namespace)
        path = os.path.join(self.root, namespace)
        if namespace not in self._ready:
            cache = os.path.dirname(self.root)
            _make_private_dirs(cache)
            st = os.lstat(cache)
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                raise StateError(errno.ELOOP, "%s is a symlink or not a directory" % cache)
            private_dir(self.root)
            private_dir(path)
            self._ready.add(namespace)
        return path

    def _paths(self, namespace, key):
        khash = key_hash(namespace, key)
        base = os.path.join(self._dir(namespace), khash)
        return khash, base + ".json", base + ".lock"

    # ---------------------------------------------------------- file access
    def _read(self, path, khash):
        """The entry at ``path`` if well-formed, for this key and live; else
        None. A bad entry is treated as absent (the next ``put`` replaces it
        atomically); it is never followed (symlink), never raises."""
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRNOS:  # a symlink where an entry should be: never followed
                return None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
                return None
            chunks, size = [], 0
            while size <= MAX_ENTRY_BYTES:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        if size > MAX_ENTRY_BYTES:
            return None
        try:
            data = json.loads(b"".join(chunks).decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return None
        return _valid_entry(data, khash, self.clock())

    def _create(self, path, text):
        """Write ``text`` as a new entry at ``path`` if no file is there:
        True when written, False when something is there (then the atomic
        replace below runs). For unsynced namespaces only (``skip_fsync``).

        One file creation instead of a temporary file and a rename (the
        largest cost of a warm push without a caller's key, whose fresh UUID
        never has an entry). Readers see no new state before the write is
        complete: an empty or partly written file is not a well-formed entry,
        so it reads as absent -- what the path held before. A crash halfway
        leaves such a file: absent to every reader, replaced atomically by the
        next ``put``; for these records a lost entry is harmless."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        except FileExistsError:  # an entry, an expired or damaged one, a symlink: replace it atomically
            return False
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            os.write(fd, text)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        return True

    def _write(self, directory, path, entry, sync=True):
        text = check_entry_size(_dumps(entry).encode("utf-8"))
        if not sync and self._create(path, text):
            return
        fd, tmp = None, None
        for _ in range(10):
            tmp = os.path.join(directory, ".tmp-%s-%s" % (os.getpid(), os.urandom(6).hex()))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
                break
            except FileExistsError:
                continue
        if fd is None:
            raise StateError(errno.EEXIST, "cannot create a temporary file in %s" % directory)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            os.write(fd, text)
            if sync:
                os.fsync(fd)
            os.close(fd)
            fd = None
            os.replace(tmp, path)  # replaces a symlink itself, never what it points to
        except BaseException:
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ------------------------------------------------------------ interface
    def take_token(self, key, rate, burst, max_wait):
        """``Store.take_token``, shared by every process of the machine."""
        return _file_take(self, key, rate, burst, max_wait)

    def add_shared(self, namespace, key, value, ttl, wait=None):
        """``Store.add_shared`` under one of SHARED_LOCKS lock files."""
        return _file_add_shared(self, namespace, key, value, ttl, wait)

    def made_key(self):
        """``Store.made_key``: its record goes to this process's journal."""
        return _file_made_key(self)

    def add_made(self, namespace, made, key, value, ttl):
        """``Store.add_made``: one line appended to the made key's journal."""
        return _file_add_made(self, namespace, made, key, value, ttl)

    def get_made(self, namespace, made, key):
        """``Store.get_made``: read back from the made key's journal."""
        return _file_get_made(self, namespace, made, key)

    def drop_made(self, namespace, made, key):
        """``Store.drop_made``."""
        return _file_drop_made(self, namespace, made, key)

    def take_slot(self, key, limit, lease):
        """``Store.take_slot``, shared by every process of the machine."""
        return _file_take_slot(self, key, limit, lease)

    def release_slot(self, key, token):
        """``Store.release_slot``, shared by every process of the machine."""
        _file_release_slot(self, key, token)

    def get(self, namespace, key):
        if self._fallback is not None:
            return self._fallback.get(namespace, key)
        if namespace in _TABLED and _fcntl is not None:
            return _table_get(self, namespace, key)
        return self._get_file(namespace, key)

    def _get_file(self, namespace, key):
        """``get`` from the key's own entry file."""
        try:
            khash, path, _ = self._paths(namespace, key)
            entry = self._read(path, khash)
        except OSError as exc:
            return self._degrade(exc).get(namespace, key)
        return None if entry is None else entry["value"]

    def put(self, namespace, key, value, ttl):
        if self._fallback is not None:
            return self._fallback.put(namespace, key, value, ttl)
        if namespace in _TABLED and _fcntl is not None:
            return _table_put(self, namespace, key, value, ttl)
        return self._put_file(namespace, key, value, ttl)

    def _put_file(self, namespace, key, value, ttl):
        """``put`` into the key's own entry file."""
        entry = {"v": 1, "exp": self.clock() + self._ttl(ttl), "value": value}
        for attempt in (1, 2):
            try:
                khash, path, _ = self._paths(namespace, key)
                entry["k"] = khash
                self._write(os.path.dirname(path), path, entry, sync=namespace not in _UNSYNCED)
                break
            except FileNotFoundError as exc:  # the directory was removed since: make it again, once
                self._ready.discard(namespace)
                if attempt == 2:
                    return self._degrade(exc).put(namespace, key, value, ttl)
            except OSError as exc:
                return self._degrade(exc).put(namespace, key, value, ttl)
        self._maybe_sweep(namespace)
        return None

    def delete(self, namespace, key):
        if self._fallback is not None:
            return self._fallback.delete(namespace, key)
        if namespace in _TABLED and _fcntl is not None:
            return _table_delete(self, namespace, key)
        return self._delete_file(namespace, key)

    def _delete_file(self, namespace, key):
        """``delete`` the key's own entry file."""
        try:
            _, path, _ = self._paths(namespace, key)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        except OSError as exc:
            self._degrade(exc).delete(namespace, key)

    @contextlib.contextmanager
    def lock(self, namespace, key, wait):
        if self._fallback is not None:
            with self._fallback.lock(namespace, key, wait):
                yield
            return
        try:
            _, _, lock_path = self._paths(namespace, key)
        except OSError as exc:
            with self._degrade(exc).lock(namespace, key, wait):
                yield
            return
        with self._locked(lock_path, namespace, key, wait):
            yield

    @contextlib.contextmanager
    def _locked(self, lock_path, namespace, key, wait, keep=False):
        """Hold the thread lock and the OS lock of ``lock_path``; yields the
        lock file's descriptor (None when the store degraded to memory on the
        way). ``keep``: for lock files nothing removes but the removal of the
        directory (the shared ones): its descriptor stays open for the next
        holder of the thread lock, which saves an open, two checks and a
        close per lock."""
        with self._guard:
            tlock = self._thread_locks.setdefault(lock_path, threading.Lock())
        started = time.monotonic()
        wait = max(0.0, float(wait)) if _finite(wait) else DEFAULT_WAIT
        if not tlock.acquire(timeout=wait):
            raise LockTimeout(namespace, time.monotonic() - started)
        try:
            try:
                try:
                    fd = self._acquire_file(lock_path, started, wait, namespace, keep)
                except FileNotFoundError:
                    # the state directory was removed since it was made: make it
                    # again, once (as ``put`` does), rather than stop sharing
                    self._ready.discard(namespace)
                    self._dir(namespace)
                    fd = self._acquire_file(lock_path, started, wait, namespace, keep)
            except OSError as exc:
                fallback = self._degrade(exc)
                with fallback.lock(namespace, key, max(0.0, wait - (time.monotonic() - started))):
                    yield None
                return
            try:
                yield fd
            finally:
                with contextlib.suppress(OSError):
                    _os_unlock(fd)
                if not keep:
                    os.close(fd)
        finally:
            tlock.release()

    def _open_lock(self, lock_path):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno not in _SYMLINK_ERRNOS:
                raise
            # a symlink planted at the lock path: remove the link itself (never
            # what it points to) and create a real lock file in its place
            if not stat.S_ISLNK(os.lstat(lock_path).st_mode):
                raise
            os.unlink(lock_path)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
            os.close(fd)
            raise StateError(errno.EPERM, "%s is not a lock file of this user" % lock_path)
        if stat.S_IMODE(st.st_mode) != 0o600 and hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        return fd

    def _acquire_file(self, lock_path, started, wait, namespace, keep=False):
        """Poll a non-blocking OS lock until ``wait`` runs out. After taking
        it, check the file is still the one at the path (a sweeper may have
        removed it): otherwise start over on the new file. ``keep``: reuse
        and keep the descriptor (``_locked``); the caller holds the path's
        thread lock, so one thread at a time uses it."""
        pause = 0.005
        if keep and self._kept_gen != os.getpid():  # inherited from the parent: never used here
            self._kept_fds.clear()
            self._kept_gen = os.getpid()
        while True:
            fd = self._kept_fds.get(lock_path) if keep else None
            if fd is None:
                fd = self._open_lock(lock_path)
            while not _os_lock(fd):
                if time.monotonic() - started >= wait:
                    if not keep:
                        os.close(fd)
                    elif self._kept_fds.get(lock_path) != fd:
                        self._kept_fds[lock_path] = fd
                    raise LockTimeout(namespace, time.monotonic() - started)
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(lock_path))
            except FileNotFoundError:
                same = False
            if same:
                if keep:
                    self._kept_fds[lock_path] = fd
                return fd
            _os_unlock(fd)
            if keep and self._kept_fds.get(lock_path) == fd:
                del self._kept_fds[lock_path]
            os.close(fd)

    # ---------------------------------------------------------------- sweep
    _swept = {}

    def _maybe_sweep(self, namespace, every=3600.0, limit=2000):
        """Remove expired entries (and their lock files) now and then, so a
        namespace of 24 h retry keys does not grow forever: at most once an
        hour per directory across all processes (a ``.swept`` marker file's
        mtime says when), at most ``limit`` files a time. Only entries whose
        lock can be taken at once are touched, and re-read under it."""
        now = time.monotonic()
        mark = (self.root, namespace)
        with self._guard:
            if now - FileStore._swept.get(mark, -every) < every:
                return
            FileStore._swept[mark] = now
        directory = os.path.join(self.root, namespace)
        marker = os.path.join(directory, ".swept")
        try:
            st = os.lstat(marker)
            if stat.S_ISREG(st.st_mode) and time.time() - st.st_mtime < every:
                return
            os.unlink(marker)
        except FileNotFoundError:
            pass
        except OSError:
            return
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
            names = [n for n in os.listdir(directory) if n.endswith(".json")][:limit]
        except OSError:
            return  # another process is sweeping (it created the marker first)
        wall = self.clock()
        _sweep_journals(directory, wall)  # pack-made keys' journals (see their region below)
        for name in names:
            path = os.path.join(directory, name)
            lock_path = path[:-5] + ".lock"
            try:
                with open(path, "rb", opener=lambda p, f: os.open(p, f | _NOFOLLOW)) as fh:
                    data = json.loads(fh.read(MAX_ENTRY_BYTES + 1).decode("utf-8"),
                                      parse_constant=_reject_constant)
                if isinstance(data, dict) and _finite(data.get("exp")) and data["exp"] > wall:
                    continue
                fd = self._open_lock(lock_path)
            except (OSError, ValueError, RecursionError):
                continue
            try:
                if not _os_lock(fd):
                    continue
                try:
                    # and the lock ``add_shared`` takes for this key (one of
                    # SHARED_LOCKS files): an add holds that one, not the key's
                    # own, while it reads the expired entry and writes a fresh
                    # one; without it this could unlink the fresh record
                    with self._locked(_shared_lock_path(self, namespace, name[:-5]), namespace, name, 0, keep=True):
                        with open(path, "rb", opener=lambda p, f: os.open(p, f | _NOFOLLOW)) as fh:
                            data = json.loads(fh.read(MAX_ENTRY_BYTES + 1).decode("utf-8"),
                                              parse_constant=_reject_constant)
                        if not (isinstance(data, dict) and _finite(data.get("exp")) and data["exp"] > wall):
                            os.unlink(path)
                            os.unlink(lock_path)
                except (OSError, ValueError, RecursionError, LockTimeout):
                    pass  # busy now (or gone): the next sweep sees it
                finally:
                    _os_unlock(fd)
            finally:
                os.close(fd)


def _close_kept(fds):
    for fd in list(fds.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


# Kept descriptors (lock files, journals, rate-limit buckets and slots) are
# tagged with the pid that opened them: a forked child never uses its
# parent's (an OS lock is per open file: parent and child would both hold it
# at once). The pid, not a fork hook, decides: a fork that runs no Python
# hook (a C-level fork, uWSGI without py-call-osafterfork) is caught too.


def private_dir(path, create=True, repair=True):
    """Make sure ``path`` is a private directory of this user: create it
    0700 if missing (unless ``create`` is false: then a missing one is an
    error), refuse a symlink, a non-directory or someone else's directory,
    force the mode to 0700 (``repair=False``: refuse a directory others
    could use, whose files may have been planted meanwhile). One check for
    every directory the pack keeps state or shared files in (the file
    store, ``serve --workers``)."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise StateError(errno.ELOOP, "%s is a symlink" % path)
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(errno.ENOTDIR, "%s is not a directory" % path)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise StateError(errno.EPERM, "%s belongs to another user" % path)
    if stat.S_IMODE(st.st_mode) != 0o700:
        if not repair and st.st_mode & 0o077:
            raise StateError(errno.EPERM, "%s is open to other users (mode %o)" % (path, stat.S_IMODE(st.st_mode)))
        os.chmod(path, 0o700)


def _make_private_dirs(path):
    """Create ``path`` and any missing parents with mode 0700 (the mode
    argument alone yields to the umask and is ignored for parents)."""
    missing = []
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)


# ------------------------------------------------- what token caches share
MAX_TOKEN_LENGTH = 4096


def valid_token(token):
    """A token travels in an HTTP header: a non-empty string of visible
    ASCII (no space, newline or control character), of sane length."""
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_LENGTH \
        and all("!" <= c <= "~" for c in token)


def live_token(entry, now):
    """(token, expires_at) of a cached token entry ``{"token", "expires_at"}``
    that is well formed and not yet expired at ``now``, else None: an entry
    of the wrong shape is treated as absent, never trusted."""
    if not isinstance(entry, dict):
        return None
    token, expires_at = entry.get("token"), entry.get("expires_at")
    if not valid_token(token) or isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)) \
            or not math.isfinite(expires_at) or expires_at <= now:
        return None
    return token, float(expires_at)


def clamp_lifetime(value, default, low, high):
    """``expires_in`` as a vendor sent it (number, numeric string, null,
    NaN, 1e308, negative...) -> seconds within [low, high]."""
    if isinstance(value, bool):
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if math.isnan(seconds):
        return default
    return min(high, max(low, seconds))


# ------------------------------------------------------------------ store()
_STORES = {}
_STORES_GUARD = threading.Lock()
#: every store made in this process, for ``_after_fork_in_child``
_LIVE_STORES = weakref.WeakSet()
_OVERRIDE = contextvars.ContextVar("line_connector_state", default=None)


def state_dir():
    """``<cache dir>/state`` (cache dir: see ``line_connector.filecache``)."""
    from .filecache import cache_dir

    return os.path.join(cache_dir(), "state")


def _config_error(message, path="env." + ENV_STATE):
    return InputError("invalid state store setting", [{"path": path, "message": message}])


_CONFIGURED = None  # (url, path) given by configure(), or None


def configure(url, path="config.state"):
    """Make ``store()`` return the Redis store at ``url`` in this process
    (``serve`` calls it with the config's ``state:``); ``None`` or ``""``
    goes back to ``LINE_CONNECTOR_STATE`` / files. Checked now: an invalid
    URL or a missing redis client is an InputError at ``path`` (exit 2).
    Nothing is connected yet (an outage is a run's failure, not a
    configuration error)."""
    global _CONFIGURED
    if url is None or (isinstance(url, str) and not url.strip()):
        _CONFIGURED = None
        return None
    if isinstance(url, str) and _is_files(url, path):
        _CONFIGURED = _FILES  # files, whatever LINE_CONNECTOR_STATE says: the config file decides
        return None
    found = _redis_store(url, path)
    _CONFIGURED = (url, path)
    return found


#: ``configure("file:")``: files in the cache directory
_FILES = ("file:",)


def _is_files(setting, path):
    """True for ``file:`` (any case): files in the cache directory. A path
    after it is refused: the directory is the cache dir's (set
    LINE_CONNECTOR_CACHE_DIR to move it)."""
    text = setting.strip()
    if text.lower() == "file:":
        return True
    if text.lower().startswith("file:"):
        raise _config_error("file: takes no path: state files live in the cache directory (set "
                            "LINE_CONNECTOR_CACHE_DIR to move it)", path)
    return False


def _redis_store(url, path):
    if not isinstance(url, str):
        raise _config_error("must be a redis://HOST:PORT/DB URL", path)
    scheme = url.strip().split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("redis", "rediss"):
        # the value is never quoted: a mistyped setting may hold a password
        raise _config_error("is not a state store this version knows: use redis://HOST:PORT/DB, "
                            "rediss://HOST:PORT/DB, file:, or leave it unset (files in the cache directory)", path)
    key = ("redis", url.strip())
    with _STORES_GUARD:
        found = _STORES.get(key)
    if found is None:
        from .state_redis import RedisStore

        made = RedisStore(url, path)  # validates the URL; no connection yet
        with _STORES_GUARD:
            found = _STORES.setdefault(key, made)
        if found is not made:
            made.close()
    return found


def check_at_start(found, warn):
    """``serve`` and ``mcp`` at start (SPEC 12): check the configured store
    now, so a Redis that evicts keys or refuses the credentials stops the
    start (``StateMisconfigured``, exit 2 naming ``config.state``) and a
    Redis without persistence is a logged warning. ``warn(event, text)``
    logs. An unreachable Redis is not a configuration error: it is logged,
    the check runs again before the first operation, and ``/readyz`` says
    503 until it answers."""
    verify = getattr(found, "verify", None)
    if verify is None:
        return
    found.warn = lambda _store, text: warn("state_store_warning", text)
    try:
        verify()
    except StateUnavailable as exc:
        warn("state_store_unreachable", "%s; the check runs again before the first use" % exc)


def register_secrets(redactor):
    """Register the password of the configured Redis URLs (the
    environment's and ``configure``'s) with a run's redactor (its user name
    is no secret, SPEC 12)."""
    redactor.add_url(os.environ.get(ENV_STATE), usernames=False)
    if _CONFIGURED is not None and _CONFIGURED != _FILES:
        redactor.add_url(_CONFIGURED[0], usernames=False)


def store():
    """The process's state store. A private scope (``private()``, used by
    ``--sandbox`` runs) wins; then ``configure(url)``; then
    ``LINE_CONNECTOR_STATE`` (unset or ``file:``: files in the cache dir;
    ``redis://`` or ``rediss://``: Redis); else files in the cache dir.
    Raises InputError (exit 2) for a setting this version cannot honour."""
    override = _OVERRIDE.get()
    if override is not None:
        return override
    if _CONFIGURED is not None:
        if _CONFIGURED != _FILES:
            return _redis_store(*_CONFIGURED)
    else:
        setting = os.environ.get(ENV_STATE, "").strip()
        if setting and not _is_files(setting, "env." + ENV_STATE):
            return _redis_store(setting, "env." + ENV_STATE)
    root = state_dir()
    with _STORES_GUARD:
        found = _STORES.get(root)
        if found is None:
            found = _STORES[root] = FileStore(root)
        return found


def forget():
    """Drop this process's store objects (and their in-memory fallbacks,
    Redis connections and ``configure`` setting); tests use it so one
    test's store does not leak into the next."""
    global _CONFIGURED
    with _STORES_GUARD:
        stores = list(_STORES.values())
        _STORES.clear()
        _CONFIGURED = None
    for found in stores:
        close = getattr(found, "close", None)
        if close is not None:
            close()
    FileStore._swept.clear()


class PrivateScope:
    """Runs inside it use a private state directory instead of the cache
    dir. ``close()`` ends the scope (and deletes the directory unless it
    belongs to an owner that outlives the scope)."""

    def __init__(self, store, cleanup=None):
        self.store = store
        self._cleanup = cleanup
        self._token = _OVERRIDE.set(store)

    def close(self):
        if self._token is not None:
            try:
                _OVERRIDE.reset(self._token)
            except ValueError:  # closed from another context: just stop overriding
                _OVERRIDE.set(None)
            self._token = None
            if self._cleanup is not None:
                self._cleanup()


_OWNED = weakref.WeakKeyDictionary()


def _temp_store():
    path = tempfile.mkdtemp(prefix="line-connector-state-")  # 0700, ours
    return path, FileStore(os.path.join(path, "state"))


def private(owner=None):
    """A private state scope (``--sandbox`` runs: ``owner`` is the Sandbox).

    With an owner, the directory lives as long as the owner does, so several
    runs against one sandbox share their state exactly as several runs
    against LINE would (its emulator remembers retry keys too), and it is
    deleted when the owner is collected or the process exits. Without one,
    each scope gets its own directory, deleted on ``close()``. Either way
    nothing reaches the user's cache directory."""
    if owner is not None:
        with _STORES_GUARD:
            try:
                found = _OWNED.get(owner)
            except TypeError:  # not weak-referenceable: fall back to one directory per run
                found, owner = None, None
            if owner is not None:
                if found is None:
                    path, found = _temp_store()
                    weakref.finalize(owner, shutil.rmtree, path, True)
                    _OWNED[owner] = found
                return PrivateScope(found)
    path, found = _temp_store()
    return PrivateScope(found, cleanup=lambda: shutil.rmtree(path, ignore_errors=True))


def annotate(output, current=None):
    """Copy the store's degradation note (if any) into a run's output: every
    result of a list, or the top level of an object. Called by the runner,
    with the store its run used (``current``; default: this context's)."""
    if current is None:
        current = _OVERRIDE.get()
    if current is None:
        with _STORES_GUARD:
            current = _STORES.get(state_dir())
    note = current.note if current is not None else None
    if not note:
        return output
    for item in (output if isinstance(output, list) else [output]):
        if isinstance(item, dict):
            item["note"] = "%s; %s" % (item["note"], note) if item.get("note") else note
    return output


# ------------------------------------------- pack-made retry keys (issue 22)
# A key the pack makes itself (a UUID4 of its own randomness) cannot collide
# with another caller's, so its record needs no lock and no file of its own:
# it is appended to a journal. The first 16 hex digits of a made key name
# the journal that holds its record (a journal per process, a new one every
# JOURNAL_ENTRIES keys), so reading a record back reads one file. A lost or
# damaged journal only loses records, which for retry keys makes a later
# answer more careful ("delivery unknown" on a 409), never a double send.
# Backends without journals (memory, Redis) keep made records as entries.

#: records per journal before the next made key starts a new one
JOURNAL_ENTRIES = 10000
_MADE_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _journal_name(made):
    """The journal file of a made key: its first 16 hex digits."""
    if not isinstance(made, str) or not _MADE_KEY.match(made):
        return None
    return "made-%s.jnl" % made.replace("-", "")[:16]


def _file_made_key(self):
    if self._fallback is not None:
        return self._fallback.made_key()
    with self._guard:
        current = getattr(self, "_journal", None)
        if current is None or current[1] >= JOURNAL_ENTRIES or current[2] != os.getpid():
            # a new journal id (a forked child starts its own); the version
            # nibble of a UUID4 is part of it
            current = [uuid.UUID(bytes=os.urandom(16), version=4).hex[:16], 0, os.getpid()]
            self._journal = current
        current[1] += 1
        prefix = current[0]
    # what str(uuid.UUID(hex=prefix + rest, version=4)) gives, without the
    # object: the prefix holds the version nibble, the variant's two bits
    # (10) are set on the first random nibble
    rest = os.urandom(8).hex()
    return "%s-%s-%s-%s%s-%s" % (prefix[:8], prefix[8:12], prefix[12:], "89ab"[int(rest[0], 16) & 3], rest[1:4],
                                 rest[4:])


def _file_add_made(self, namespace, made, key, value, ttl):
    if self._fallback is not None:
        return self._fallback.add_made(namespace, made, key, value, ttl)
    name = _journal_name(made)
    if name is None:
        raise ValueError("add_made takes a key made by made_key()")
    entry = {"v": 1, "k": key_hash(namespace, key), "exp": self.clock() + self._ttl(ttl), "value": value}
    # a newline before as well as after: a line left half-written by a crash
    # ends at the next record's start instead of swallowing that record
    line = b"\n" + check_entry_size(_dumps(entry).encode("utf-8")) + b"\n"
    try:
        _append_journal(self, os.path.join(self._dir(namespace), name), line)
    except OSError as exc:
        return self._degrade(exc).add_made(namespace, made, key, value, ttl)
    self._maybe_sweep(namespace)
    return None


def _append_journal(store, path, line):
    """Append ``line`` to the journal at ``path`` in one write with O_APPEND
    (lines of several writers never interleave). The journal this process
    last wrote stays open for the next record (its keys come in a row),
    checked still linked first (the sweep or a removed directory unlinks it:
    then it is opened anew, as before); any other is opened for the write."""
    with store._guard:  # journal descriptors are only used under it
        kept = store._kept_fds  # closed with the store (see FileStore.__init__)
        if store._kept_gen != os.getpid():  # inherited from the parent: never used here
            kept.clear()
            store._kept_gen = os.getpid()
        fd = kept.get(path)
        if fd is not None and os.fstat(fd).st_nlink == 0:
            del kept[path]
            os.close(fd)
            fd = None
        if fd is None:
            last = store.__dict__.get("_journal_path")
            if last is not None and last in kept:
                os.close(kept.pop(last))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600)
            kept[path] = fd
            store._journal_path = path
        os.write(fd, line)


def _file_get_made(self, namespace, made, key):
    if self._fallback is not None:
        return self._fallback.get_made(namespace, made, key)
    name = _journal_name(made)
    if name is None:
        return None
    try:
        # looked up first: a caller's own key (a UUID4 too) names a journal
        # that does not exist, and this is the whole of its cost (access()
        # raises nothing; a failed open costs an exception too)
        path = os.path.join(self._dir(namespace), name)
        if not _exists(path):
            return None
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return self._degrade(exc).get_made(namespace, made, key)
    try:
        with open(fd, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return self._degrade(exc).get_made(namespace, made, key)
    khash, now, found = key_hash(namespace, key), self.clock(), None
    needle = ('"k":"%s"' % khash).encode()
    for line in data.split(b"\n"):
        if needle not in line:
            continue
        try:
            entry = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            continue  # a damaged line (a crash halfway through a write) is no record
        if isinstance(entry, dict) and entry.get("k") == khash and entry.get("value", 0) is None:
            found = None  # dropped (drop_made), whatever came before
            continue
        entry = _valid_entry(entry, khash, now)
        if entry is not None:
            found = entry["value"]  # the last live line wins
    return found


def _file_drop_made(self, namespace, made, key):
    # a null record: it hides every earlier line of the key, expired or not
    self.add_made(namespace, made, key, None, 60.0)


def _sweep_journals(directory, wall):
    """Remove journals whose every record has expired (called by the sweep)."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith("made-") and n.endswith(".jnl")]
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb", opener=lambda p, f: os.open(p, f | _NOFOLLOW)) as fh:
                data = fh.read()
            live = False
            for line in data.split(b"\n"):
                try:
                    entry = json.loads(line.decode("utf-8"), parse_constant=_reject_constant) if line else None
                except (ValueError, RecursionError):
                    continue
                if isinstance(entry, dict) and _finite(entry.get("exp")) and entry["exp"] > wall:
                    live = True
                    break
            if not live:
                os.unlink(path)
        except OSError:
            continue


#: lock files shared by the caller-given retry keys' atomic adds (by hash)
SHARED_LOCKS = 16


def _file_add_shared(self, namespace, key, value, ttl, wait=None):
    """``add_if_absent`` under one of SHARED_LOCKS lock files picked by the
    key's hash, instead of a lock file created per key: two keys of a bucket
    wait for each other only while one of them is read and written."""
    if self._fallback is not None:
        return self._fallback.add_if_absent(namespace, key, value, ttl, wait)
    wait = wait_budget() if wait is None else wait
    try:
        khash = key_hash(namespace, key)
        lock_path = _shared_lock_path(self, namespace, khash)
    except OSError as exc:
        return self._degrade(exc).add_if_absent(namespace, key, value, ttl, wait)
    if namespace in _TABLED and _fcntl is not None:
        return _table_add(self, namespace, key, khash, lock_path, value, ttl, wait)
    with self._locked(lock_path, namespace, key, wait, keep=True):
        if namespace in _UNSYNCED and _create_new_entry(self, namespace, key, value, ttl):
            return None  # nothing was at its path, so no live entry: added
        existing = self.get(namespace, key)
        if existing is not None:
            return existing
        self.put(namespace, key, value, ttl)
        return None


def _shared_lock_path(store, namespace, khash):
    """The shared lock file of a key (by its hash). The paths are kept per
    store while the namespace's directory is known made (``_dir``; a lock
    file found removed makes it again, see ``_locked``)."""
    index = int(khash[:8], 16) % SHARED_LOCKS
    paths = store.__dict__.get("_shared_paths")
    if paths is None or namespace not in store._ready:
        paths = store._shared_paths = {}
    path = paths.get((namespace, index))
    if path is None:
        path = paths[namespace, index] = os.path.join(store._dir(namespace), ".shared-%02d.lock" % index)
    return path


# Record tables (``table_records``): a tabled namespace keeps a record in a
# slot of its key's shared lock file when one is free, else (a full page, a
# record too large for a slot) in the key's own entry file, as any other
# namespace. The lock file is a table of TABLE_PAGES pages of TABLE_SLOTS
# slots; a key's page is picked by its hash (other digits than its lock
# file's), and its record may be in any slot of that page. A slot holds the
# entry's JSON (as an entry file would) padded with spaces and a newline; a
# free slot is blank (spaces, or the zeros of a page never written). Slots
# are read and written only under the lock file's lock (the thread lock and
# the OS lock, as ``add_shared`` takes them), so a reader never sees half a
# slot, and two processes adding one key decide exactly as with files.
# An expired or damaged slot is free: no sweep is needed. A record lost with
# its lock file (the state directory removed) is what a lost entry file was.
# The table is not fsync'd: for the namespaces it serves a lost record only
# makes a later answer more careful (SPEC 7: "delivery unknown" on a 409).

#: bytes of one slot: a LINE retry-key record takes about 190
TABLE_SLOT = 256
#: slots of one page (a page is read whole: 4 KiB)
TABLE_SLOTS = 16
#: pages of one shared lock file: at most 512 KiB each, 8 MiB for SHARED_LOCKS
#: files; 32,768 slots before records spill into files of their own
TABLE_PAGES = 128
#: seconds ``get``, ``put`` and ``delete`` wait for a table's lock (it is held
#: only to read and write a page)
TABLE_WAIT = 10.0
#: seconds ``get``, ``put`` and ``delete`` wait for a table's lock at least,
#: whatever the caller's budget (0 when its deadline is nearly used): holders
#: keep the lock for microseconds, only a stopped process holds it longer
TABLE_PATIENCE = 0.25
_FREE_SLOT = b" " * (TABLE_SLOT - 1) + b"\n"


def _exists(path):
    """Whether anything is at ``path`` (a dangling symlink: no; an entry
    behind a symlink is never followed by the read that comes next)."""
    return os.access(path, os.F_OK, effective_ids=_EFFECTIVE_IDS)


_EFFECTIVE_IDS = os.access in os.supports_effective_ids


_PAGE_BYTES = TABLE_SLOT * TABLE_SLOTS


def _table_page(khash):
    """The offset of a key's page in its shared lock file."""
    return (int(khash[8:16], 16) % TABLE_PAGES) * _PAGE_BYTES


def _read_page(fd, at):
    """A page of a table (bytes; past the end of the file, zeros: free)."""
    page = os.pread(fd, _PAGE_BYTES, at)
    return page if len(page) == _PAGE_BYTES else page.ljust(_PAGE_BYTES, b"\0")


def _slot_entry(slot, now):
    """The live entry a slot holds (its own hash in "k"), else None (free,
    expired or damaged: a free slot)."""
    text = slot.strip(b" \n\0")
    if not text:
        return None
    try:
        data = json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    k = data.get("k") if isinstance(data, dict) else None
    return _valid_entry(data, k, now) if isinstance(k, str) else None


_EXP_PREFIX = b'{"exp":'


def _slot_expired(slot, now):
    """Whether a slot is free for an add: blank, expired or damaged. The
    expiry is read without parsing the slot (its "exp" comes first: keys
    are sorted); a slot not starting so is parsed whole (damaged: free)."""
    if slot[:7] != _EXP_PREFIX:
        return _slot_entry(slot, now) is None
    end = slot.find(b",", 7)
    try:
        exp = float(slot[7:end])
    except ValueError:
        return _slot_entry(slot, now) is None
    return not (math.isfinite(exp) and exp > now)


def _find_slot(page, khash, now, want_free=False):
    """(index of the slot holding the key's live entry or None, that entry,
    index of a free slot or None) in a page. Only slots naming the key are
    parsed. The free slot is looked for only when ``want_free`` (an add):
    the key's own expired or damaged slot first (so a clock stepped back
    never revives an old slot beside a new one), then a blank one, then any
    expired or damaged one (read by its expiry alone, ``_slot_expired``)."""
    needle = ('"k":"%s"' % khash).encode()
    hit, entry, own = None, None, None
    at = page.find(needle)
    while at >= 0:
        i = at // TABLE_SLOT
        found = _slot_entry(page[i * TABLE_SLOT:(i + 1) * TABLE_SLOT], now)
        if found is not None and found["k"] == khash:
            hit, entry = i, found
            break
        if own is None:
            own = i
        at = page.find(needle, (i + 1) * TABLE_SLOT)
    if not want_free or hit is not None:
        return hit, entry, None
    if own is not None:
        return hit, entry, own
    for i in range(0, _PAGE_BYTES, TABLE_SLOT):
        if page[i] != 0x7B and not page[i:i + TABLE_SLOT].strip(b" \n\0"):  # 0x7B: "{", an entry's start
            return hit, entry, i // TABLE_SLOT
    for i in range(TABLE_SLOTS):  # no blank slot: an expired or damaged one is free too
        if _slot_expired(page[i * TABLE_SLOT:(i + 1) * TABLE_SLOT], now):
            return hit, entry, i
    return hit, entry, None


def _pwrite_slot(fd, data, offset):
    """Write one slot; a short write is an OSError (the slot not written)."""
    written = os.pwrite(fd, data, offset)
    if written != len(data):
        raise OSError(errno.EIO, "short write to a record table (%d of %d bytes)" % (written, len(data)))


def _slot_bytes(entry):
    """The slot holding ``entry``, or None when it does not fit one."""
    # what _dumps(entry) gives (keys sorted), with the encoder run on the value only
    text = ('{"exp":%r,"k":"%s","v":1,"value":%s}' % (float(entry["exp"]), entry["k"], _dumps(entry["value"]))
            ).encode("utf-8")
    return None if len(text) >= TABLE_SLOT else text.ljust(TABLE_SLOT - 1) + b"\n"


def _table_add(self, namespace, key, khash, lock_path, value, ttl, wait):
    """``add_shared`` for a tabled namespace: under the key's shared lock,
    the key's page, then its entry file; added into a free slot of the
    page, or as an entry file when the page is full. A lock file found
    removed after the slot was written (the state directory removed
    meanwhile) is no record: the add is made again, once, in the new
    directory (as the create of an entry file would have failed)."""
    started = time.monotonic()
    result = _table_add_once(self, namespace, key, khash, lock_path, value, ttl, wait)
    if result is not _UNLINKED:
        return result
    self._ready.discard(namespace)
    try:
        lock_path = _shared_lock_path(self, namespace, khash)
    except OSError as exc:
        return self._degrade(exc).add_if_absent(namespace, key, value, ttl, wait)
    wait = max(0.0, wait - (time.monotonic() - started)) if _finite(wait) else wait
    result = _table_add_once(self, namespace, key, khash, lock_path, value, ttl, wait)
    return None if result is _UNLINKED else result


#: ``_table_add_once``: the slot was written into a lock file since removed
_UNLINKED = object()


def _table_add_once(self, namespace, key, khash, lock_path, value, ttl, wait):
    entry = {"v": 1, "exp": self.clock() + self._ttl(ttl), "value": value, "k": khash}
    with self._locked(lock_path, namespace, key, wait, keep=True) as fd:
        if fd is None:  # degraded on the way: this process's store
            existing = self.get(namespace, key)
            if existing is None:
                self.put(namespace, key, value, ttl)
            return existing
        try:
            at = _table_page(khash)
            hit, found, free = _find_slot(_read_page(fd, at), khash, self.clock(), want_free=True)
        except OSError as exc:
            return self._degrade(exc).add_if_absent(namespace, key, value, ttl, wait)
        if found is not None:
            return found["value"]
        # the key's entry file (a spilled record), looked up first without
        # opening it: a fresh key has none, and an open that fails costs more
        if _exists(os.path.join(os.path.dirname(lock_path), khash + ".json")):
            existing = self._get_file(namespace, key)
            if existing is not None:
                return existing
        slot = _slot_bytes(entry) if free is not None else None
        if slot is not None:
            try:
                _pwrite_slot(fd, slot, at + free * TABLE_SLOT)
                return None if os.fstat(fd).st_nlink > 0 else _UNLINKED
            except OSError:
                pass  # the table cannot take it: an entry file, as for a full page
        if not _create_new_entry(self, namespace, key, value, ttl):
            self._put_file(namespace, key, value, ttl)
        return None


@contextlib.contextmanager
def _table_locked(self, namespace, key):
    """(descriptor or None, the key's hash, its page's offset) under the
    key's shared lock, for ``get``, ``put`` and ``delete``; the descriptor is
    None when the store degraded to memory on the way (then only the key's
    entry file, or the memory store, is used).

    The lock is waited for the caller's budget but at least TABLE_PATIENCE,
    whatever the budget: holders keep it for microseconds, so mere
    contention (threads of the service sharing one store, a deadline nearly
    used) never makes the operation miss the table. Past that, LockTimeout
    is raised, never a fall back to the entry file alone (which would miss a
    slot's record, or leave the slot and the file disagreeing). The edge
    that remains: a holder stopped (SIGSTOP, a debugger, a frozen VM) for
    longer than that makes ``get``, ``put`` and ``delete`` of its keys raise
    LockTimeout; the callers (actions/line/send.py) then act as if the
    record were unknown: more careful, never a false "already used"."""
    khash = key_hash(namespace, key)
    wait = max(TABLE_PATIENCE, wait_budget(TABLE_WAIT))
    with contextlib.ExitStack() as stack:
        try:
            lock_path = _shared_lock_path(self, namespace, khash)
        except OSError as exc:
            self._degrade(exc)
            fd = None
        else:
            fd = stack.enter_context(self._locked(lock_path, namespace, key, wait, keep=True))
        yield fd, khash, None if fd is None else _table_page(khash)


def _table_get(self, namespace, key):
    with _table_locked(self, namespace, key) as (fd, khash, at):
        if fd is not None:
            try:
                _, found, _ = _find_slot(_read_page(fd, at), khash, self.clock())
            except OSError:
                found = None
            if found is not None:
                return found["value"]
        return self.get(namespace, key) if self._fallback is not None else self._get_file(namespace, key)


def _table_put(self, namespace, key, value, ttl):
    entry = {"v": 1, "exp": self.clock() + self._ttl(ttl), "value": value}
    with _table_locked(self, namespace, key) as (fd, khash, at):
        if fd is not None:
            entry["k"] = khash
            try:
                hit, _, _ = _find_slot(_read_page(fd, at), khash, self.clock())
                if hit is not None:  # the record is in the table: it stays there if it fits
                    slot = _slot_bytes(entry)
                    _pwrite_slot(fd, _FREE_SLOT if slot is None else slot, at + hit * TABLE_SLOT)
                    if slot is not None:
                        return None
            except OSError:
                pass
        if self._fallback is not None:
            return self.put(namespace, key, value, ttl)
        return self._put_file(namespace, key, value, ttl)


def _table_delete(self, namespace, key):
    with _table_locked(self, namespace, key) as (fd, khash, at):
        if fd is not None:
            try:
                hit, _, _ = _find_slot(_read_page(fd, at), khash, self.clock())
                if hit is not None:
                    _pwrite_slot(fd, _FREE_SLOT, at + hit * TABLE_SLOT)
            except OSError:
                pass
        if self._fallback is not None:
            return self.delete(namespace, key)
        return self._delete_file(namespace, key)


def _create_new_entry(store, namespace, key, value, ttl):
    """Under the add's lock, for an unsynced namespace: write the entry as a
    new file (``FileStore._create``) when nothing is at its path, True; else
    False (an entry, live or not, or any error: the caller's read and
    ``put`` decide, as before). A fresh caller key has no file, so the add
    is one file creation instead of a failed open, then the creation."""
    try:
        khash, path, _ = store._paths(namespace, key)
        entry = {"v": 1, "exp": store.clock() + store._ttl(ttl), "value": value, "k": khash}
        if not store._create(path, check_entry_size(_dumps(entry).encode("utf-8"))):
            return False
    except OSError:
        return False
    store._maybe_sweep(namespace)
    return True


__all__ = ["Store", "FileStore", "MemoryStore", "LockTimeout", "StateUnavailable", "StateMisconfigured",
           "EntryTooLarge", "check_at_start", "store", "configure", "private",
           "forget", "annotate", "register_secrets", "skip_fsync", "table_records", "wait_budget", "state_dir",
           "key_hash", "valid_token", "JOURNAL_ENTRIES",
           "clamp_lifetime", "DEFAULT_WAIT"]


# ------------------------------------------------------------------ token buckets
# The store operation behind ``Store.take_token`` (line_connector/ratelimit.py,
# SPEC 13): one bucket record per key, in the process (memory) or in a file of
# ``<state dir>/ratelimit/`` under an OS lock (every process of the machine).
BUCKET_NAMESPACE = "ratelimit"


def _bucket_step(tokens, stamp, now, rate, burst, max_wait):
    """The bucket arithmetic: (new tokens, new stamp, result as ``take``)."""
    if now > stamp:
        tokens = min(burst, tokens + (now - stamp) * rate)
        stamp = now
    tokens = min(tokens, burst)
    if tokens >= 1.0:
        return tokens - 1.0, stamp, None
    wait = (1.0 - tokens) / rate
    if wait > max_wait:
        return tokens, stamp, -wait
    return tokens - 1.0, stamp, wait


_BUCKET_MEMORY = {}
_BUCKET_MEMORY_GUARD = threading.Lock()


def _memory_take(store, key, rate, burst, max_wait):
    with _BUCKET_MEMORY_GUARD:
        slot = (id(store), key)
        tokens, stamp = _BUCKET_MEMORY.get(slot, (burst, time.monotonic()))
        tokens, stamp, out = _bucket_step(tokens, stamp, time.monotonic(), rate, burst, max_wait)
        _BUCKET_MEMORY[slot] = (tokens, stamp)
        return out


_BUCKET_RECORD = struct.Struct("<dd")  # tokens, stamp (wall clock: shared by the machine's processes)
_BUCKET_FILES = {}
_BUCKET_FILES_PID = [os.getpid()]
_BUCKET_FILES_GUARD = threading.Lock()
#: (store id, its kept bucket descriptors) of stores collected since the
#: last ``_bucket_file`` call: appended by their finalizer (a list append
#: needs no lock, and a finalizer may run inside a guarded block), closed
#: by the next call, under the guard
_DEAD_BUCKET_OWNERS = []
MAX_OPEN_BUCKETS = 256


def _bucket_file(store, key, suffix=".bucket"):
    """(fd, thread lock, transient) of the bucket file (or, with ``suffix``
    ".slots", the slots file): opened once per store and process and kept
    while the file is still linked (someone removing the state directory
    unlinks it: then it is opened anew), up to MAX_OPEN_BUCKETS; past that
    opened per call (``transient``: the caller closes it). A store's kept
    descriptors, the unlinked ones included, are closed once the store is
    collected (a ``--sandbox`` run's private store goes with its sandbox),
    so a process that makes many stores never fills up with them."""
    slot = (id(store), store.root, key, suffix)
    with _BUCKET_FILES_GUARD:
        if _BUCKET_FILES_PID[0] != os.getpid():  # the parent's open files: the child opens its own
            _BUCKET_FILES.clear()
            _BUCKET_FILES_PID[0] = os.getpid()
        while _DEAD_BUCKET_OWNERS:
            _close_dead_buckets(*_DEAD_BUCKET_OWNERS.pop())
        found = _BUCKET_FILES.get(slot)
        if found is not None:
            if os.fstat(found[0]).st_nlink > 0:
                return found[0], found[1], False
            # removed: the old descriptor is left open until the store is
            # collected (another thread may be using it right now, and closing
            # it could hand its number to another file); this happens only
            # when the directory is removed
            del _BUCKET_FILES[slot]
            store._ready.discard(BUCKET_NAMESPACE)
        fd = _open_bucket(store, key, suffix)
        if len(_BUCKET_FILES) >= MAX_OPEN_BUCKETS:
            return fd, threading.Lock(), True
        kept = store.__dict__.get("_bucket_fds")
        if kept is None or kept[0] != os.getpid():
            kept = store._bucket_fds = (os.getpid(), [])
            weakref.finalize(store, _DEAD_BUCKET_OWNERS.append, (id(store), kept))
        kept[1].append(fd)
        found = _BUCKET_FILES[slot] = (fd, threading.Lock())
        return found[0], found[1], False


def _close_dead_buckets(owner, kept):
    """Forget and close the kept bucket descriptors of a collected store
    (no thread can be using them: each use holds the store). Only in the
    process that opened them: a forked child's copies may carry numbers the
    child has since reused."""
    for slot in [slot for slot in _BUCKET_FILES if slot[0] == owner]:
        del _BUCKET_FILES[slot]
    pid, fds = kept
    if pid == os.getpid():
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    fds.clear()


def _open_bucket(store, key, suffix):
    """The bucket file's descriptor, made when missing. A state directory
    removed since this process last made it is made again, once (as ``put``
    does): otherwise the first open after the removal fails and the limiter
    falls back to this process only, sharing nothing from then on."""
    for attempt in (1, 2):
        path = os.path.join(store._dir(BUCKET_NAMESPACE), key_hash(BUCKET_NAMESPACE, key) + suffix)
        try:
            return store._open_lock(path)
        except FileNotFoundError:
            store._ready.discard(BUCKET_NAMESPACE)
            if attempt == 2:
                raise


def _file_take(store, key, rate, burst, max_wait):
    if store._fallback is not None:
        return _memory_take(store._fallback, key, rate, burst, max_wait)
    try:
        fd, tlock, transient = _bucket_file(store, key)
        try:
            return _locked_take(fd, tlock, rate, burst, max_wait)
        finally:
            if transient:
                os.close(fd)
    except OSError as exc:
        return _memory_take(store._degrade(exc), key, rate, burst, max_wait)


if hasattr(os, "pread"):
    def _pread(fd, size):
        return os.pread(fd, size, 0)

    def _pwrite(fd, data):
        os.pwrite(fd, data, 0)
else:  # Windows: the same under the lock, in two calls
    def _pread(fd, size):
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, size)

    def _pwrite(fd, data):
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)


def _locked_take(fd, tlock, rate, burst, max_wait):
    with tlock:  # an OS lock is per open file: the threads of this process take turns first
        if not _os_lock(fd):
            started = time.monotonic()
            pause = 0.0002
            while not _os_lock(fd):
                # holders keep it for microseconds; one that is stopped must not hang us
                if time.monotonic() - started > max(1.0, max_wait):
                    return -(time.monotonic() - started)
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        try:
            raw = _pread(fd, _BUCKET_RECORD.size)
            now = time.time()
            if not raw:
                tokens, stamp = burst, now  # a new bucket starts full
            else:
                tokens, stamp = _BUCKET_RECORD.unpack(raw) if len(raw) == _BUCKET_RECORD.size else (0.0, now)
                if not (math.isfinite(tokens) and math.isfinite(stamp)) or stamp > now + 3600:
                    tokens, stamp = 0.0, now  # damaged: an empty bucket, the safe side
            tokens, stamp, out = _bucket_step(tokens, stamp, now, rate, burst, max_wait)
            _pwrite(fd, _BUCKET_RECORD.pack(tokens, stamp))
            return out
        finally:
            _os_unlock(fd)


# ------------------------------------------------------------------ concurrency slots
# The store operations behind ``Store.take_slot`` / ``release_slot``
# (line_connector/ratelimit.py: LINE's limit on concurrent operations per
# audience): the live holders of a key, each a token and the wall-clock time
# its lease ends, in the process (memory) or in a ``.slots`` file of
# ``<state dir>/ratelimit/`` under an OS lock (every process of the machine).
# An expired lease frees its slot: a holder that crashed holds it no longer
# than its lease.
_SLOT_MEMORY = {}
#: the most holders a slots file keeps (a limit above it is read as this)
MAX_SLOTS = 1000
#: how long a take or release waits for a slots file's OS lock before it
#: acts as if every slot were taken (the limiter polls again, within the
#: action's deadline) or leaves the slot to its lease. Holders keep the lock
#: for microseconds; only a stopped process keeps it longer, and a longer
#: patience would be spent past the deadline the limiter was keeping.
SLOT_LOCK_PATIENCE = 0.1
_SLOT_LINE = re.compile(rb"^([0-9a-f]{32}) ([0-9]+(?:\.[0-9]+)?)$")


def _new_slot_token():
    return os.urandom(16).hex()


def _memory_take_slot(store, key, limit, lease):
    with _BUCKET_MEMORY_GUARD:
        held = _SLOT_MEMORY.setdefault((id(store), key), {})
        now = time.monotonic()
        for token in [t for t, end in held.items() if end <= now]:
            del held[token]
        if len(held) >= limit:
            return None
        token = _new_slot_token()
        held[token] = now + lease
        return token


def _memory_release_slot(store, key, token):
    with _BUCKET_MEMORY_GUARD:
        held = _SLOT_MEMORY.get((id(store), key))
        if held is not None:
            held.pop(token, None)
            if not held:
                del _SLOT_MEMORY[(id(store), key)]


def _read_slots(fd, now):
    """The live holders of a slots file: {token: lease end}. A damaged line
    (a crash halfway through a write, or anything else) holds no slot."""
    raw = _pread(fd, 64 * MAX_SLOTS)
    held = {}
    for line in raw.split(b"\n"):
        found = _SLOT_LINE.match(line)
        if found:
            end = float(found.group(2))
            if now < end < now + 86400 * 366:
                held[found.group(1).decode("ascii")] = end
    return held


def _write_slots(fd, held):
    data = b"".join(b"%s %.3f\n" % (token.encode("ascii"), end) for token, end in held.items())
    _pwrite(fd, data)
    os.ftruncate(fd, len(data))


def _locked_slots(store, key, change):
    """Run ``change(held, now) -> (held or None when unchanged, out)`` on the
    slots file of ``key`` under its OS lock; returns out."""
    fd, tlock, transient = _bucket_file(store, key, ".slots")
    try:
        with tlock:
            started = time.monotonic()
            pause = 0.0002
            while not _os_lock(fd):
                # holders keep it for microseconds; one that is stopped must not hang us
                if time.monotonic() - started > SLOT_LOCK_PATIENCE:
                    return change(None, None)[1]
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
            try:
                now = time.time()
                held, out = change(_read_slots(fd, now), now)
                if held is not None:
                    _write_slots(fd, held)
                return out
            finally:
                _os_unlock(fd)
    finally:
        if transient:
            os.close(fd)


def _file_take_slot(store, key, limit, lease):
    if store._fallback is not None:
        return _memory_take_slot(store._fallback, key, limit, lease)

    def take(held, now):
        if held is None or len(held) >= min(limit, MAX_SLOTS):
            return None, None  # all taken (or the lock is stuck: wait, the safe side)
        token = _new_slot_token()
        held[token] = now + lease
        return held, token

    try:
        return _locked_slots(store, key, take)
    except OSError as exc:
        return _memory_take_slot(store._degrade(exc), key, limit, lease)


def _file_release_slot(store, key, token):
    if store._fallback is not None:
        return _memory_release_slot(store._fallback, key, token)

    def release(held, now):
        if held is None or held.pop(token, None) is None:
            return None, None  # not there (lapsed), or a stuck lock: the lease ends it
        return held, None

    try:
        _locked_slots(store, key, release)
    except OSError as exc:
        _memory_release_slot(store._degrade(exc), key, token)


# ------------------------------------------------------------------ fork
def _after_fork_in_child():
    """Run in a child of ``os.fork`` (multiprocessing, gunicorn's workers,
    a playbook engine that forks): every thread lock of the state store is
    replaced by a free one. A fork copies a lock held by another thread of
    the parent (one in the middle of a put, a bucket take or a slot read)
    in its held state, and that thread does not exist in the child: the
    child's first use of the store would wait on it forever. The OS locks
    are the child's own already (kept descriptors are tagged with the pid
    that opened them and reopened by a child). A fork made from C without
    Python's fork hooks runs no hook, here as for the standard library's
    own locks."""
    global _STORES_GUARD, _BUCKET_MEMORY_GUARD, _BUCKET_FILES_GUARD
    _STORES_GUARD = threading.Lock()
    _BUCKET_MEMORY_GUARD = threading.Lock()
    _BUCKET_FILES_GUARD = threading.Lock()
    for store in list(_LIVE_STORES):  # memory and file stores: each has _after_fork
        store._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
