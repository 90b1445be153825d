"""The Redis backend of the state store (SPEC 8, issue 14).

Why Redis: the file store is shared by the processes of one machine only,
so two SOAR workers or two service replicas on two machines would each
fetch a Sobot token and invalidate the other's. With
``LINE_CONNECTOR_STATE=redis://HOST:PORT/DB`` (or ``state:`` in the service
config) every process on every machine shares one store.

Same interface and semantics as ``FileStore`` (see ``line_connector.state``):

* entries are ``{"v": 1, "k": <key hash>, "value": ...}`` JSON strings under
  ``line-connector:<namespace>:<sha256 of namespace and key>``, so the raw
  keys (which hold hashes of credentials) never reach Redis, and a value
  copied under another key is refused on read. Redis expires them (``PX``);
* a value is validated on read exactly like a file entry: larger than
  ``MAX_ENTRY_BYTES`` (checked by the server before it sends anything), bad
  JSON, NaN, nested too deep or of the wrong shape is absent, never raised;
* ``add_if_absent`` is one atomic server-side step (``SET NX PX``), not a
  lock plus two round trips;
* ``lock`` is ``SET key token NX PX lease`` polled until the bounded wait
  runs out, released by a Lua script only if the token is still ours. The
  lease is what the holder's deadline leaves plus a margin, so the lock
  expires by itself when its holder dies, yet never while a live holder
  (bounded by its own deadline) can still be working.

An unreachable Redis (refused, timed out, reset, loading) raises
``state.StateUnavailable``: never a silent fallback to files or memory, which
would fetch a second Sobot token and forget retry keys. A Redis that refuses
the URL's credentials (WRONGPASS, NOAUTH, NOPERM) raises
``state.StateMisconfigured`` (exit 2 naming the setting): waiting does not
fix a wrong password.

Checked once per store, before its first operation (``verify``; ``serve`` and
``mcp`` call it at start, SPEC 12): the pack's keys must be readable and
writable with these credentials; a Redis that evicts keys
(``maxmemory-policy`` other than ``noeviction``) is refused
(``StateMisconfigured``), because an evicted idempotency record or retry-key
record is a message sent twice; a Redis with neither AOF nor RDB saves
forgets everything on a restart, which is warned about (``warn``). Managed
Redis often disables ``CONFIG``: then ``INFO`` is read instead, and when both
are refused the settings cannot be known, which is warned about, not refused. Every connection and
command is bounded in time (``CONNECT_TIMEOUT``, ``COMMAND_TIMEOUT``; one
reconnect on a broken pooled connection, without backoff), so an unreachable
Redis ends a run within seconds. The URL may carry a password: it is kept
out of every message, repr and exception (only host and port are named).
"""
import contextlib
import json
import math
import os
import time
from urllib.parse import urlsplit

from .errors import InputError
from .output import SERVICE_EXTRA_HINT
from .state import (DEFAULT_WAIT, MAX_ENTRY_BYTES, LockTimeout, StateMisconfigured, StateUnavailable, Store,
                    BUCKET_NAMESPACE, _check_ns, _dumps, _finite, _reject_constant, check_entry_size, key_hash,
                    wait_budget)

#: seconds to open a TCP (and TLS) connection to Redis
CONNECT_TIMEOUT = 2.0
#: seconds one command may take; healthy Redis answers in well under 1 ms
COMMAND_TIMEOUT = 2.0
#: added to the holder's remaining deadline to make a lock's lease
LOCK_MARGIN = 5.0
#: the longest lease, whatever the deadline (an hour-long lock is a stuck one)
MAX_LEASE = 3600.0
PREFIX = "line-connector"
INSTALL_HINT = SERVICE_EXTRA_HINT

# KEYS[1]: the entry. Returns nil when absent, -1 when too large or not a
# string (damaged: nothing sent back), else the value.
_GET = """
local n = redis.pcall('STRLEN', KEYS[1])
if type(n) ~= 'number' then return -1 end
if n == 0 then return false end
if n > tonumber(ARGV[1]) then return -1 end
return redis.call('GET', KEYS[1])
"""
# KEYS[1]: the entry; ARGV: new value, ttl ms, max size. Stores it if absent;
# else returns the value there (or -1 when too large to be data).
_ADD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local n = redis.pcall('STRLEN', KEYS[1])
if type(n) ~= 'number' or n > tonumber(ARGV[3]) then return -1 end
return redis.call('GET', KEYS[1])
"""
# replace a damaged entry only if it is still the same damaged one
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# replace an entry too large or not a string, only if it still is one
_REPLACE_BIG = """
local n = redis.pcall('STRLEN', KEYS[1])
if type(n) ~= 'number' or n > tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# release the lock only if it still holds our token (it may have expired
# and been taken by another process since)
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _import_redis():
    try:
        import redis
    except ImportError:
        raise InputError("the Redis state store needs the redis client, which is not installed",
                         [{"path": "env.LINE_CONNECTOR_STATE",
                           "message": "run: %s (or unset it to use files)" % INSTALL_HINT}]) from None
    return redis


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ("" if value is None else str(value))


#: one warning of a kind per Redis and per day on a CLI's stderr (each CLI
#: run is a process of its own: warning on every run would bury its output)
NOTICE_SECONDS = 24 * 3600.0


def _warn_stderr_daily(store, text):
    """The CLI's warning: one line on stderr, at most once a day per Redis and
    machine (a marker file in the cache directory, named by a hash of the
    text; nothing is written to Redis, whose keyspace stays the pack's
    entries only)."""
    import hashlib
    import sys

    from .filecache import cache_dir

    mark = os.path.join(cache_dir(), "notices", hashlib.sha256(text.encode("utf-8")).hexdigest()[:32])
    try:
        if time.time() - os.stat(mark).st_mtime < NOTICE_SECONDS:
            return
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(mark), mode=0o700, exist_ok=True)
        with open(mark, "w"):
            pass
        os.utime(mark)
    except OSError:
        pass  # cannot mark: say it (a warning too many beats one too few)
    sys.stderr.write("line-connector: warning: %s\n" % store._redactor.scrub(text))
    sys.stderr.flush()


def parse_url(url, path):
    """Check a redis:// or rediss:// URL; returns (host, port, db). Raises
    InputError at ``path`` naming the rule, never quoting the URL (it may
    carry a password)."""
    def bad(message):
        return InputError("invalid state store setting", [{"path": path, "message": message}])

    if not isinstance(url, str) or not url.strip():
        raise bad("must be a redis://HOST:PORT/DB or rediss://HOST:PORT/DB URL")
    url = url.strip()
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in url):
        raise bad("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad("is not a valid URL (the port must be a number from 1 to 65535)") from None
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise bad("must start with redis:// or rediss:// (TLS)")
    if not parts.hostname:
        raise bad("must name a host: redis://HOST:PORT/DB")
    if port is not None and not 1 <= port <= 65535:
        raise bad("the port must be a number from 1 to 65535")
    if parts.query or parts.fragment:
        raise bad("must not have a ?query or #fragment: connection options are fixed by the pack "
                  "(bounded timeouts, TLS verification on)")
    db = parts.path.lstrip("/")
    if db and not (db.isdigit() and db.isascii() and int(db) <= 1_000_000):
        raise bad("the path must be a database number, e.g. /0")
    return parts.hostname, port or 6379, int(db) if db else 0


# token buckets (``take_token``; line_connector/ratelimit.py)
# KEYS[1]: the bucket, a string "<tokens> <stamp>"; ARGV: rate, burst, max
# wait, ttl ms. Redis's clock (TIME), so machines with skewed clocks share
# one bucket correctly. Returns a string: "" (a token was there), the wait
# (reserved) or "-wait" (refused, nothing reserved). A value of another
# shape or type is an empty bucket (the safe side).
_TAKE_TOKEN = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst, maxw = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local got = redis.pcall('GET', KEYS[1])
local tokens, stamp = burst, now
if type(got) == 'string' then
  local t, s = string.match(got, '^(%-?[0-9.e+-]+) ([0-9.e+-]+)$')
  tokens, stamp = tonumber(t), tonumber(s)
  if tokens == nil or stamp == nil or tokens ~= tokens or stamp ~= stamp or stamp > now + 3600 then
    tokens, stamp = 0, now
  end
elseif type(got) == 'table' and got.err then
  redis.call('DEL', KEYS[1])
  tokens, stamp = 0, now
end
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
if tokens > burst then tokens = burst end
local out = ''
if tokens < 1 then
  local wait = (1 - tokens) / rate
  if wait > maxw then return '-' .. string.format('%.6f', wait) end
  out = string.format('%.6f', wait)
end
redis.call('SET', KEYS[1], string.format('%.9f %.6f', tokens - 1, stamp), 'PX', ARGV[4])
return out
"""


# concurrency slots (``take_slot`` / ``release_slot``; line_connector/ratelimit.py)
# KEYS[1]: a sorted set of the holders' tokens, each scored with the
# millisecond its lease ends (Redis's clock); ARGV: limit, lease ms, token.
# Lapsed leases are dropped first, so a holder that crashed frees its slot
# when its lease ends, and the key itself expires with its longest lease. A
# key of another type is replaced (the safe side: LINE answers a 429 at worst,
# which is retried). Returns 1 (taken) or 0 (all taken).
_TAKE_SLOT = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local kind = redis.call('TYPE', KEYS[1])
kind = type(kind) == 'table' and kind.ok or kind
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 1
"""
_RELEASE_SLOT = """
local got = redis.pcall('ZREM', KEYS[1], ARGV[1])
if type(got) == 'table' and got.err then return 0 end
return got
"""


class RedisStore(Store):
    """A state store in Redis; see the module docstring."""

    shared = True
    note = None
    _take_token_script = None
    _take_slot_script = None
    _release_slot_script = None

    def __init__(self, url, path="env.LINE_CONNECTOR_STATE", prefix=PREFIX):
        host, port, db = parse_url(url, path)
        redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        from .redaction import Redactor

        self._url = url.strip()
        self._redactor = Redactor()
        self._redactor.add_url(self._url, usernames=False)  # only the password is a secret
        self.location = "%s:%d/%d" % (host if ":" not in host else "[%s]" % host, port, db)
        self.prefix = prefix
        self._errors = redis.exceptions.RedisError
        self._no_perm = redis.exceptions.NoPermissionError
        self._auth_errors = (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError,
                             redis.exceptions.AuthenticationWrongNumberOfArgsError)
        self._client = redis.Redis.from_url(
            self._url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 1), retry_on_timeout=False, health_check_interval=0,
            decode_responses=False, client_name=None)
        self._get = self._client.register_script(_GET)
        self._add = self._client.register_script(_ADD)
        self._replace = self._client.register_script(_REPLACE)
        self._replace_big = self._client.register_script(_REPLACE_BIG)
        self._unlock = self._client.register_script(_UNLOCK)
        self.path = path
        #: True once ``verify`` passed: every operation checks it first
        self.verified = False
        #: where warnings go (``verify``); serve and mcp log them as JSON lines
        self.warn = _warn_stderr_daily

    def __repr__(self):
        return "RedisStore(%s)" % self.location

    def close(self):
        with contextlib.suppress(Exception):
            self._client.close()

    # --------------------------------------------------------------- helpers
    def _key(self, namespace, key):
        _check_ns(namespace)
        khash = key_hash(namespace, key)
        return khash, "%s:%s:%s" % (self.prefix, namespace, khash)

    def _unavailable(self, exc, doing):
        text = self._redactor.scrub(str(exc))[:300]
        return StateUnavailable("the state store (Redis at %s) is unreachable while %s: %s%s"
                                % (self.location, doing, type(exc).__name__, ": " + text if text else ""))

    def _misconfigured(self, message):
        return StateMisconfigured("the state store cannot be used as configured",
                                  [{"path": self.path, "message": self._redactor.scrub(message)}])

    def _refused(self, exc):
        """WRONGPASS, NOAUTH, NOPERM: the credentials, never an outage."""
        text = self._redactor.scrub(str(exc))[:300]
        if isinstance(exc, self._no_perm):
            return self._misconfigured("Redis at %s does not let this user run what the pack needs on its "
                                       "%s:* keys (GET, SET, DEL, EVALSHA): %s; grant them in the ACL"
                                       % (self.location, self.prefix, text))
        return self._misconfigured("Redis at %s refuses the URL's credentials (%s); check the user name and "
                                   "password in the URL" % (self.location, text))

    def _raw(self, doing, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._auth_errors as exc:
            error = self._refused(exc)
        except self._errors as exc:
            error = self._unavailable(exc, doing)
        except OSError as exc:  # a socket error redis-py did not wrap
            error = self._unavailable(exc, doing)
        raise error  # outside the except block: no chained original (its args may hold the URL)

    def take_token(self, key, rate, burst, max_wait):
        """``Store.take_token``, shared by every replica and machine: one Lua
        script, atomic, on Redis's clock."""
        script = self._take_token_script
        if script is None:
            script = self._take_token_script = self._client.register_script(_TAKE_TOKEN)
        rkey = "%s:%s:%s" % (self.prefix, BUCKET_NAMESPACE, key_hash(BUCKET_NAMESPACE, key))
        ttl_ms = int((burst / rate + 60.0) * 1000)
        raw = self._call("rate limiting", script, keys=[rkey],
                         args=[repr(float(rate)), repr(float(burst)), repr(float(max_wait)), ttl_ms])
        text = raw.decode("ascii") if isinstance(raw, bytes) else str(raw or "")
        return float(text) if text else None

    def _slot_key(self, key):
        return "%s:%s:%s:slots" % (self.prefix, BUCKET_NAMESPACE, key_hash(BUCKET_NAMESPACE, key))

    def take_slot(self, key, limit, lease):
        """``Store.take_slot``, shared by every replica and machine: one Lua
        script, atomic, on Redis's clock; the lease is enforced by Redis."""
        script = self._take_slot_script
        if script is None:
            script = self._take_slot_script = self._client.register_script(_TAKE_SLOT)
        token = os.urandom(16).hex()
        lease_ms = max(1, int(math.ceil(float(lease) * 1000)))
        got = self._call("taking a concurrency slot", script, keys=[self._slot_key(key)],
                         args=[int(limit), lease_ms, token])
        return token if got == 1 else None

    def release_slot(self, key, token):
        """``Store.release_slot``: one Lua script (ZREM), so the pack needs no
        command beyond EVALSHA; an unreachable Redis leaves it to the lease."""
        script = self._release_slot_script
        if script is None:
            script = self._release_slot_script = self._client.register_script(_RELEASE_SLOT)
        with contextlib.suppress(StateUnavailable):
            self._call("releasing a concurrency slot", script, keys=[self._slot_key(key)], args=[token])

    def _call(self, doing, fn, *args, **kwargs):
        if not self.verified:
            self.verify()
        return self._raw(doing, fn, *args, **kwargs)

    # ------------------------------------------------------- the start check
    def verify(self):
        """Check this Redis once (see the module docstring); warnings go to
        ``self.warn``. Raises ``StateMisconfigured`` (credentials, ACL,
        eviction) or ``StateUnavailable`` (unreachable: checked again at the
        next operation)."""
        probe = "%s:probe" % self.prefix
        self._raw("checking", self._get, keys=[probe], args=[MAX_ENTRY_BYTES])  # auth, ACL; writes nothing
        policy, persistent = self._settings()
        if policy is not None and policy != "noeviction":
            raise self._misconfigured(
                "Redis at %s evicts keys (maxmemory-policy %s): an evicted idempotency or retry-key record "
                "lets a message be sent twice. Set maxmemory-policy noeviction (and give it memory), or use "
                "a Redis of its own for the pack" % (self.location, policy))
        self.verified = True
        warnings = []
        if policy is None:
            warnings.append("could not read the maxmemory-policy of Redis at %s (CONFIG and INFO are refused): "
                            "make sure it is noeviction, or records may be evicted and messages sent twice"
                            % self.location)
        if persistent is False:
            warnings.append("Redis at %s keeps no persistence (neither AOF nor RDB saves): a restart forgets "
                            "every idempotency record, webhook event id and token; NXCloud and Sobot sends "
                            "repeated after a restart are delivered again. Turn on appendonly yes or save rules"
                            % self.location)
        elif persistent is None:
            warnings.append("could not read whether Redis at %s persists its data (CONFIG is refused): make sure "
                            "AOF or RDB saves are on, or a restart forgets every idempotency record"
                            % self.location)
        for text in warnings:
            with contextlib.suppress(Exception):
                self.warn(self, text)
        return warnings

    def _settings(self):
        """(maxmemory-policy or None, persistent True/False/None): from
        CONFIG GET, else from INFO (managed Redis may refuse CONFIG; INFO
        does not show RDB save rules, so only AOF counts there)."""
        redis = _import_redis()
        try:
            got = {}
            for name in ("maxmemory-policy", "appendonly", "save"):
                got.update(self._raw_config_get(name))
            policy = _text(got.get("maxmemory-policy"))
            aof = _text(got.get("appendonly")) == "yes"
            return policy, aof or bool(_text(got.get("save")).strip())
        except redis.exceptions.ResponseError:
            pass  # CONFIG disabled, renamed, or not in this user's ACL
        try:
            memory = self._client.info("memory")
            persistence = self._client.info("persistence")
        except redis.exceptions.ResponseError:
            return None, None
        except self._errors as exc:
            raise self._unavailable(exc, "checking") from None
        policy = _text(memory.get("maxmemory_policy")) or None
        return policy, True if str(persistence.get("aof_enabled")) == "1" else None

    def _raw_config_get(self, name):
        try:
            return {_text(k): v for k, v in self._client.config_get(name).items()}
        except _import_redis().exceptions.ResponseError:  # NOPERM, unknown command: the caller reads INFO
            raise
        except self._auth_errors as exc:
            raise self._refused(exc) from None
        except (self._errors, OSError) as exc:
            raise self._unavailable(exc, "checking") from None

    def ping(self):
        self._call("checking", self._client.ping)

    @staticmethod
    def _ttl_ms(ttl):
        return max(1, int(Store._ttl(ttl) * 1000))

    @staticmethod
    def _decode(raw, khash):
        """The value of a well-formed entry for this key, else None."""
        if raw is None or raw == -1 or not isinstance(raw, bytes) or len(raw) > MAX_ENTRY_BYTES:
            return None
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("v") != 1 or data.get("k") != khash or "value" not in data:
            return None
        return data["value"]

    @staticmethod
    def _encode(khash, value, nonce=None):
        entry = {"v": 1, "k": khash, "value": value}
        if nonce is not None:
            entry["n"] = nonce
        return _dumps(entry).encode("utf-8")

    @staticmethod
    def _nonce_of(raw):
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError, AttributeError):
            return None
        return data.get("n") if isinstance(data, dict) else None

    # ------------------------------------------------------------- interface
    def get(self, namespace, key):
        khash, rkey = self._key(namespace, key)
        raw = self._call("reading", self._get, keys=[rkey], args=[MAX_ENTRY_BYTES])
        return self._decode(raw, khash)

    def put(self, namespace, key, value, ttl):
        khash, rkey = self._key(namespace, key)
        data = check_entry_size(self._encode(khash, value))
        self._call("writing", self._client.set, rkey, data, px=self._ttl_ms(ttl))

    def delete(self, namespace, key):
        _, rkey = self._key(namespace, key)
        self._call("deleting", self._client.delete, rkey)

    def add_if_absent(self, namespace, key, value, ttl, wait=None):
        """Atomic in one server-side step; ``wait`` is unused (no lock)."""
        khash, rkey = self._key(namespace, key)
        # a nonce of this call: the client resends a command whose reply was
        # lost, and the resend then finds the entry this very call stored
        nonce = os.urandom(12).hex()
        data, ttl_ms = check_entry_size(self._encode(khash, value, nonce)), self._ttl_ms(ttl)
        for _ in range(3):
            raw = self._call("writing", self._add, keys=[rkey], args=[data, ttl_ms, MAX_ENTRY_BYTES])
            if raw is None or (isinstance(raw, bytes) and self._nonce_of(raw) == nonce):
                return None
            existing = self._decode(raw, khash)
            if existing is not None:
                return existing
            # a damaged entry is absent: replace it, unless another process
            # replaced it meanwhile (then look again)
            if raw == -1:  # too large or not a string (never sent back)
                replaced = self._call("writing", self._replace_big, keys=[rkey],
                                      args=[data, ttl_ms, MAX_ENTRY_BYTES])
            else:
                replaced = self._call("writing", self._replace, keys=[rkey], args=[data, ttl_ms, raw])
            if replaced:
                return None
        raise StateUnavailable("the state store (Redis at %s) kept changing a damaged entry while writing"
                               % self.location)

    @contextlib.contextmanager
    def lock(self, namespace, key, wait):
        _, rkey = self._key(namespace, key)
        rkey += ":lock"
        wait = max(0.0, float(wait)) if _finite(wait) else DEFAULT_WAIT
        lease = min(MAX_LEASE, max(wait_budget(), wait) + LOCK_MARGIN)
        token = os.urandom(16).hex()
        started = time.monotonic()
        pause = 0.002
        while not self._call("locking", self._client.set, rkey, token, nx=True, px=int(lease * 1000)):
            # a resend of a SET whose reply was lost finds our own token: it is ours
            if self._call("locking", self._client.get, rkey) == token.encode("ascii"):
                break
            if time.monotonic() - started >= wait:
                raise LockTimeout(namespace, time.monotonic() - started)
            time.sleep(min(pause, max(0.0, wait - (time.monotonic() - started))))
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            # a failure to release is not this run's failure: the lease ends it
            with contextlib.suppress(StateUnavailable):
                self._call("unlocking", self._unlock, keys=[rkey], args=[token])
