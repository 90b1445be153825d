"""The one HTTP path of the pack: timeouts, TLS, proxy, retries and the
bounds on time and memory live here.

Actions describe requests (``Request``); ``HttpClient.send`` performs one,
retrying only what its ``RetryPolicy`` allows, and returns the result object
of SPEC section 4 (``status_code``, ``reason``, ``response_headers``,
``json_body``) plus a few keys that say what happened.

Why retries are split by *when* a failure happened:

* ``unsent``: no byte of the request was written (connection refused,
  connect timeout, proxy unreachable, a CA bundle that cannot be loaded, a
  TLS handshake that failed or timed out, certificate verification
  included). Retrying cannot duplicate anything. Which phase an attempt
  reached is recorded by the connection itself (``_Attempt.sent``), not
  guessed from the exception type: urllib3 reports a TLS handshake timeout
  as a *read* timeout, though nothing was sent.
* ``maybe_sent``: the request may have reached the server (read timeout,
  connection dropped mid-exchange, 5xx). Retrying is only safe when the
  service deduplicates, as LINE does with ``X-Line-Retry-Key``.

Bounded in time (SPEC 7). Socket timeouts alone bound nothing: a server
that sends one byte a second restarts the read timeout with every byte. So
an action has one *deadline*, an absolute point on the monotonic clock held
in a context variable (``deadline_scope``, set by the runner for a run and
copied into the engine's worker threads). Every request of the action reads
it: token fetches made from inside ``Request.auth`` included, though their
modules never mention it. Each attempt's connect and read timeouts are cut
to the time left, and a watchdog shuts the attempt's socket down at the
deadline, which ends a dripped header block or body wherever it is. A
request not started because the deadline had passed is reported ``"not
sent"``; an attempt cut mid-way is ``"unknown"`` (it may have been
processed). ``RetryPolicy.deadline`` still bounds one request's retries.

Bounded in memory: the body is streamed and read to at most
``MAX_BODY`` bytes (10 MiB); past that reading stops, the connection is
closed and the result is a failure keeping the first 64 KiB.

Results survive any answer: a body that is not strict JSON (invalid, NaN or
Infinity, non-UTF-8, nested deeper than ``MAX_JSON_DEPTH``, too many values
to hold within the memory bound) gives ``json_body: null`` with the raw
text kept and a note; status, headers and the caller's ``extra`` keys
(``retry_key``...) are never lost.
"""
import contextvars
import functools
import heapq
import itertools
import json
import math
import os
import random
import socket
import stat
import threading
import time
from contextlib import contextmanager
from typing import Callable

from . import jsontext
from .errors import InputError

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds, per attempt
#: Seconds an action may take, all its requests, retries and token fetches included.
DEFAULT_DEADLINE = 60.0
MAX_RAW_BODY = 64 * 1024
#: A response body is read up to this many bytes (SPEC 7); requests with a
#: ``stream_to`` hook are exempt (their content goes to a file, not memory).
MAX_BODY = 10 * 1024 * 1024
#: JSON nested deeper than this is not parsed: no LINE, NXCloud or Sobot
#: answer comes close, and deeper structures would make printing and
#: scrubbing the result recurse past Python's limit.
MAX_JSON_DEPTH = 100
#: Rough upper bound of the memory a parsed body may take. A 10 MiB body of
#: ``[{},{},...]`` becomes 3.5 million dicts (~250 MB); such a body is kept
#: raw rather than parsed.
MAX_PARSE_COST = 40 * 1024 * 1024
#: An attempt is only started when at least this much of the deadline is left.
MIN_ATTEMPT_TIME = 0.5
CHUNK = 64 * 1024


# ------------------------------------------------------------ the deadline
class _Deadline:
    __slots__ = ("at", "seconds")

    def __init__(self, at, seconds):
        self.at = at            # absolute, on time.monotonic()
        self.seconds = seconds  # as the caller gave it, for messages


_DEADLINE = contextvars.ContextVar("line_connector_deadline", default=None)


def check_seconds(value, name):
    """``value`` as a float if it is a positive, finite number of seconds;
    else an InputError naming ``name`` (``--deadline``, ``timeout``...).
    Zero or negative would time out everything at once, NaN compares false
    with everything (a bound that never triggers) and infinity is no bound."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and value > 0
    if not ok:
        raise InputError("invalid %s" % name,
                         [{"path": name, "message": "must be a positive, finite number of seconds, got %s"
                                                    % _short(value)}])
    return value


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@contextmanager
def deadline_scope(seconds=DEFAULT_DEADLINE, start=None):
    """Everything sent inside the block ends within ``seconds`` of ``start``
    (a ``time.monotonic()`` value; default: now), plus the time to close a
    socket. A scope nested in another never extends it."""
    seconds = check_seconds(seconds, "deadline")
    at = (time.monotonic() if start is None else start) + seconds
    outer = _DEADLINE.get()
    if outer is not None and outer.at <= at:
        current = outer
    else:
        current = _Deadline(at, seconds)
    token = _DEADLINE.set(current)
    try:
        yield current
    finally:
        _DEADLINE.reset(token)


#: a callable(seconds) told the duration of every HTTP attempt made in its
#: context (worker threads too: they copy the context); the service's vendor
#: latency metric. Set with ``observe_attempts``.
_OBSERVER = contextvars.ContextVar("line_connector_attempt_observer", default=None)


@contextmanager
def observe_attempts(callback):
    """Within it, ``callback(seconds)`` is called after each HTTP attempt
    (an exception it raises is ignored: a metric never fails a send)."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def _observe(started):
    callback = _OBSERVER.get()
    if callback is not None:
        try:
            callback(time.monotonic() - started)
        except Exception:
            pass


def time_left():
    """Seconds left before the current action's deadline (0.0 once it has
    passed); ``DEFAULT_DEADLINE`` outside any ``deadline_scope``. Code that
    waits (a lock, a backoff) waits at most this long."""
    current = _DEADLINE.get()
    if current is None:
        return DEFAULT_DEADLINE
    return max(0.0, current.at - time.monotonic())


# ------------------------------------------------------------ the watchdog
_ATTEMPT = contextvars.ContextVar("line_connector_attempt", default=None)


class _Watchdog:
    """One daemon thread for the whole process that shuts attempts down at
    their deadline: starting a ``threading.Timer`` per attempt cost a thread
    start (and a wait for it to run) on every request. Attempts are kept in a
    heap by deadline; one that finishes is dropped lazily (and the heap
    compacted when finished ones outnumber live ones), so a long stream of
    quick requests under a 60 s deadline does not pile up."""

    def __init__(self):
        self._reset()

    def _reset(self):
        self._cond = threading.Condition(threading.Lock())
        self._heap = []  # (at, seq, attempt)
        self._live = 0
        self._seq = itertools.count()
        self._thread = None

    def watch(self, attempt):
        with self._cond:
            heapq.heappush(self._heap, (attempt.at, next(self._seq), attempt))
            self._live += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="line-connector-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is attempt:  # the new earliest deadline: wake the thread to wait less
                self._cond.notify()

    def done(self, attempt):
        with self._cond:
            self._live -= 1
            if len(self._heap) > 64 and len(self._heap) > 2 * self._live:
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)

    def _run(self):
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay > 0:
                        self._cond.wait(delay)
                        continue
                    attempt = heapq.heappop(self._heap)[2]
                    break
            attempt.fire()  # outside the heap's lock: fire() takes the attempt's own


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):  # a forked child (gunicorn worker) has no watchdog thread yet
    os.register_at_fork(after_in_child=_WATCHDOG._reset)


class _Attempt:
    """The sockets one attempt uses, shut down at the deadline by the
    process's watchdog thread (``_Watchdog``). Shutting a socket down (rather
    than closing it) wakes the thread blocked in recv() with an EOF, whatever
    phase it is in (TLS handshake, headers, body), without racing the
    reading thread for the file descriptor."""

    def __init__(self, at):
        self.at = at
        self.lock = threading.Lock()
        self.socks = []
        self.fired = False
        self.done = False
        #: a watched connection served this attempt (False through a SOCKS
        #: proxy, whose pools are not ours: then ``sent`` says nothing)
        self.watched = False
        #: a byte of the request may have been written (set before the write)
        self.sent = False

    def add(self, sock):
        if sock is None:
            return
        with self.lock:
            if not any(s is sock for s in self.socks):
                self.socks.append(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def fire(self):
        with self.lock:
            if self.done:  # the attempt ended: its connection may be serving another one now
                return
            self.fired = True
            for sock in self.socks:
                _shutdown(sock)

    def finish(self):
        """No more shutting down from here on (the body is read, the
        response closed)."""
        with self.lock:
            self.done = True

    def __enter__(self):
        self.token = _ATTEMPT.set(self)
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc):
        self.finish()
        _WATCHDOG.done(self)
        _ATTEMPT.reset(self.token)
        return False


def _shutdown(sock):
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return
    if fd < 0:
        return
    try:
        # a duplicate descriptor: shutdown acts on the connection, and the
        # socket object the other thread reads stays untouched
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def _register(sock):
    attempt = _ATTEMPT.get()
    if attempt is not None:
        attempt.watched = True
        attempt.add(sock)


def _mark_sent():
    attempt = _ATTEMPT.get()
    if attempt is not None:
        attempt.watched = True
        attempt.sent = True


@functools.lru_cache(maxsize=None)
def _watched_pool_classes():
    """urllib3 pool classes whose connections register their sockets with
    the current attempt: when connecting (the raw socket, before TLS) and
    when a request starts on a reused keep-alive connection. They also mark
    the attempt ``sent`` just before the first byte of the request is
    written: every write of http.client and urllib3 goes through ``send``.
    Writes made while connecting (a proxy's CONNECT) are not the request."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Watched:
        def _new_conn(self):
            policy = _PEER_POLICY.get()
            sock = super()._new_conn() if policy is None else _vetted_conn(self, policy)
            _register(sock)
            return sock

        _lc_connecting = False

        def connect(self):
            self._lc_connecting = True
            try:
                super().connect()
            finally:
                self._lc_connecting = False
            _register(getattr(self, "sock", None))

        def putrequest(self, *args, **kwargs):
            _register(getattr(self, "sock", None))
            return super().putrequest(*args, **kwargs)

        def send(self, data):
            if not self._lc_connecting:
                if self.sock is None and self.auto_open:
                    self.connect()  # as http.client would: a failure here sent nothing
                _mark_sent()
            return super().send(data)

    class WatchedHTTPConnection(_Watched, HTTPConnection):
        pass

    class WatchedHTTPSConnection(_Watched, HTTPSConnection):
        pass

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


#: where connections may go, for a run whose URLs come from a caller (the
#: service's inline assets); None: anywhere. See ``peer_policy``.
_PEER_POLICY = contextvars.ContextVar("line_connector_peer_policy", default=None)


@contextmanager
def peer_policy(policy):
    """Within it, every new connection is checked against ``policy`` (an
    object with ``allows_host(host, port)`` and ``allows_address(ip,
    port)``, e.g. ``config.InlineAssetPolicy``): the host it is for, and
    each address the name resolves to, *before* connecting to it, so a
    DNS answer changed since any earlier check cannot slip through. A
    refused connection is an ordinary "not sent" failure. ``client_for``
    gives such runs clients of their own, so they never reuse a connection
    made without the check."""
    token = _PEER_POLICY.set(policy)
    try:
        yield
    finally:
        _PEER_POLICY.reset(token)


def _vetted_conn(conn, policy):
    """The socket of urllib3 connection ``conn``, connected only to an
    address ``policy`` allows (as urllib3's own ``_new_conn``, with the
    resolution done here so that the address checked is the one used)."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util.connection import create_connection

    host, port = conn._dns_host, conn.port
    if not policy.allows_host(host, port):
        raise NewConnectionError(conn, "refused: this host may not be reached with an inline asset")
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise NewConnectionError(conn, "Failed to resolve the host name") from None
    addresses = [info[4][0] for info in infos]
    allowed = [a for a in addresses if policy.allows_address(a, port)]
    if not allowed or len(allowed) < len(addresses):  # one private answer taints the name
        raise NewConnectionError(conn, "refused: the host resolves to an address an inline asset may not reach")
    last = None
    for address in allowed:
        try:
            return create_connection((address, port), conn.timeout, source_address=conn.source_address,
                                     socket_options=conn.socket_options)
        except socket.timeout:
            last = ConnectTimeoutError(conn, "Connection to %s timed out" % host)
        except OSError as exc:
            last = NewConnectionError(conn, "Failed to establish a new connection: %s" % exc)
    raise last


def _session_class():
    """``requests.Session`` that never reads a redirect. The pack follows
    none (``allow_redirects=False``), but ``Session.send`` still works out
    the next request of a 3xx for ``Response.next``: it reads the whole
    body first, past the pack's size bound, and a malformed ``Location``
    raised ValueError out of the send, after the request was delivered (a
    fan-out then lost the results of the chunks before it, and a resend
    would deliver them again). A 3xx is a result like any other answer."""
    import requests

    class NoRedirectSession(requests.Session):
        def get_redirect_target(self, resp):
            return None

    return NoRedirectSession


def _adapter_class():
    from requests.adapters import HTTPAdapter

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(_watched_pool_classes())

        def proxy_manager_for(self, proxy, **kwargs):
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):
                # a SOCKS manager has pools of its own: replacing them would bypass
                # the proxy; there the cut socket timeouts are the bound
                manager.pool_classes_by_scheme = dict(_watched_pool_classes())
            return manager

    return WatchedAdapter


# ------------------------------------------------------------ requests
# RetryPolicy and Request are plain classes, not dataclasses: importing
# ``dataclasses`` (it imports ``inspect``, ``ast`` and ``dis``) and generating
# their methods cost ~10-20 ms of every CLI run.
class RetryPolicy:
    """How one request is retried (immutable, compared and hashed by value)."""

    __slots__ = ("max_attempts", "deadline", "backoff", "backoff_max", "retry_statuses", "retry_unsent",
                 "retry_maybe_sent")

    def __init__(self, max_attempts=1, deadline=60.0, backoff=0.5, backoff_max=8.0, retry_statuses=frozenset(),
                 retry_unsent=True, retry_maybe_sent=False):
        for name, value in zip(self.__slots__, (max_attempts, deadline, backoff, backoff_max, retry_statuses,
                                                retry_unsent, retry_maybe_sent)):
            object.__setattr__(self, name, value)

    def _values(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name, value):
        raise AttributeError("RetryPolicy is immutable: make a new one")

    __delattr__ = __setattr__

    def __eq__(self, other):
        return self._values() == other._values() if type(other) is type(self) else NotImplemented

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return "RetryPolicy(%s)" % ", ".join("%s=%r" % pair for pair in zip(self.__slots__, self._values()))

    def delay(self, attempt):
        """Exponential backoff with full jitter in [base/2, base]."""
        base = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return base * random.uniform(0.5, 1.0)


#: For requests that change nothing or are deduplicated by the server.
SAFE_RETRY = RetryPolicy(max_attempts=4, retry_statuses=frozenset({500, 502, 503, 504}),
                         retry_unsent=True, retry_maybe_sent=True)
#: For sends the server cannot deduplicate: only a connection never made is retried.
UNSENT_ONLY = RetryPolicy(max_attempts=3, retry_unsent=True, retry_maybe_sent=False)


class Request:
    """One HTTP request an action wants made.

    ``body`` is bytes serialized once by the action: the exact bytes signed
    are the bytes sent. ``auth`` adds credentials at send time (per attempt),
    so a dry run never fetches a token and a signature gets a fresh timestamp.
    ``extra`` keys are copied into the result (e.g. the recipients of a chunk).
    ``stream_to``: for an action that saves content to a file, a callable
    given each chunk of a 2xx body; such a body is not held in memory, so it
    is exempt from ``MAX_BODY`` (the deadline still applies).
    """

    FIELDS = ("method", "url", "params", "headers", "body", "retry", "auth", "extra", "stream_to", "limiter")

    def __init__(self, method, url, params=None, headers=None, body=None, retry=UNSENT_ONLY, auth=None,
                 extra=None, stream_to=None, limiter=None):
        self.method = method
        self.url = url
        self.params = params
        self.headers = {} if headers is None else headers
        self.body = body
        self.retry = retry
        self.auth = auth
        self.extra = {} if extra is None else extra
        self.stream_to = stream_to
        #: paces each attempt and judges 429s (``line_connector.ratelimit.Limiter``):
        #: ``wait(max_wait)`` -> (seconds waited, None) or (0, why not sent);
        #: ``retry(result)`` -> True for a refusal worth another attempt;
        #: ``release()`` after each attempt (gives back a concurrency slot)
        self.limiter = limiter

    def replace(self, **changes):
        """A copy with ``changes`` (as ``dataclasses.replace`` made)."""
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise TypeError("Request has no field %s" % ", ".join(sorted(unknown)))
        values = {name: getattr(self, name) for name in self.FIELDS}
        values.update(changes)
        return Request(**values)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS)

    __hash__ = None  # mutable, as the dataclass it replaces

    def __repr__(self):
        # headers, params and body carry credentials (an OAuth token request
        # has client_secret in its body): only their names and sizes show
        from urllib.parse import urlsplit

        try:  # no user info, query or fragment: any of them may hold a secret
            parts = urlsplit(self.url)
            url = "%s://%s%s" % (parts.scheme, parts.netloc.rpartition("@")[2], parts.path)
        except (TypeError, ValueError, AttributeError):
            url = "<url>"
        return "Request(%s %s, headers=%s, params=%s, body=%s, auth=%s)" % (
            self.method, url, sorted(self.headers or {}), sorted(self.params or {}),
            "None" if self.body is None else "<%d bytes>" % len(self.body),
            "None" if self.auth is None else type(self.auth).__name__)

    def describe(self):
        """What --dry-run prints: the request with credentials masked."""
        headers = dict(self.headers)
        if self.auth is not None:
            headers.update(self.auth.masked_headers(self))
        body = None
        if self.body is not None:
            text = self.body.decode("utf-8")
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        out = {"method": self.method, "url": self.url, "headers": headers}
        if self.params:
            out["params"] = self.params
        if body is not None:
            out["body"] = body
        out.update(self.extra)
        return out


#: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` builds this
#: encoder anew on every call; an encoder holds no state between calls
_BODY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


#: a top-level list with at least this many items is first tried as a list
#: of plain strings (``_plain_strings``); shorter ones are not worth the try
_PLAIN_LIST_MIN = 32


def _plain_strings(items):
    """The compact JSON of the list ``items`` (UTF-8 bytes) when every item
    is a string the encoder writes as is: no quote, no backslash, no control
    character (the only characters it escapes with ``ensure_ascii=False``).
    Byte for byte what the encoder gives (``b'["a","b"]'``), built by one
    join, one encode and three C-level scans of the bytes instead of one
    encoder step per item: a chunk of 2,000 phones or 500 user IDs is ~10x
    faster. In UTF-8 no byte of a multi-byte character is below 0x80, so a
    byte below 0x20 or a backslash is one in the text. None for any other
    list (an item not a string, one the encoder would escape, a lone
    surrogate): the caller then uses the encoder."""
    try:
        data = '","'.join(items).encode("utf-8")  # TypeError unless every item is a str
    except (TypeError, UnicodeEncodeError):
        return None
    # the separators hold exactly 2 * (n - 1) quotes: any more is in an item
    if (data.count(b'"') != 2 * (len(items) - 1) or b"\\" in data
            or len(data.translate(None, _CONTROL_BYTES)) != len(data)):
        return None
    return b'["' + data + b'"]'


#: the bytes the encoder escapes besides the quote and the backslash
_CONTROL_BYTES = bytes(range(0x20))


def json_bytes(obj):
    """Serialize a JSON body once: compact, UTF-8, non-ASCII kept as is.

    A body with a long list of plain strings at its top level (the
    recipients of a bulk send) has that list written by ``_plain_strings``;
    everything else by the encoder. Both give the same bytes
    (tests/engine/test_json_bytes.py compares them on arbitrary values)."""
    if type(obj) is dict and any(type(v) is list and len(v) >= _PLAIN_LIST_MIN for v in obj.values()):
        encode = _BODY_ENCODER.encode
        parts = []
        for key, value in obj.items():
            if type(key) is not str:  # the encoder converts other keys its own way
                return encode(obj).encode("utf-8")
            text = None
            if type(value) is list and len(value) >= _PLAIN_LIST_MIN:
                text = _plain_strings(value)
            parts.append(encode(key).encode("utf-8") + b":" + (encode(value).encode("utf-8") if text is None
                                                                else text))
        return b"{" + b",".join(parts) + b"}"
    return _BODY_ENCODER.encode(obj).encode("utf-8")


# ------------------------------------------------------------ parsing
def _depth_ok(obj, limit):
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def parse_json_body(body):
    """(value, note): the strictly parsed JSON body, or (None, why not).

    Never raises: whatever the bytes, the caller keeps its result."""
    if not body:
        return None, None
    cost = 64 * (body.count(b"{") + body.count(b"[")) + 32 * body.count(b",")
    if cost > MAX_PARSE_COST:
        return None, "body not parsed: it holds too many JSON values to parse within the memory bound"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "body is not valid UTF-8"
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = jsontext.loads(text)
    except RecursionError:
        return None, "body not parsed: JSON nested deeper than %d levels" % MAX_JSON_DEPTH
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer too long for int()
        return None, "body is not valid JSON: %s" % _short_text(str(exc))
    if not _depth_ok(value, MAX_JSON_DEPTH):
        return None, "body not parsed: JSON nested deeper than %d levels" % MAX_JSON_DEPTH
    return value, None


def _short_text(text, limit=200):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _raw_text(body):
    """The first 64 KiB as text (undecodable bytes replaced)."""
    return body[:MAX_RAW_BODY].decode("utf-8", "replace")


def response_result(resp, body=None, cut=None):
    """The SPEC result object for a received response.

    ``body``: the bytes read (``resp.content`` when None, for callers holding
    a fully read response). ``cut``: why reading stopped early, or None."""
    if body is None:
        body = resp.content or b""
    result = {
        "status_code": resp.status_code,
        "reason": resp.reason or "",
        "response_headers": dict(resp.headers),
        "json_body": None,
    }
    note = None
    if cut is None:
        result["json_body"], note = parse_json_body(body)
    if body and result["json_body"] is None:
        result["raw_body"] = _raw_text(body)
        if cut is not None or len(body) > MAX_RAW_BODY:
            result["raw_body_truncated"] = True
    if cut is not None:
        result["error"] = cut
    elif note is not None:
        result["note"] = note
    return result


def _cert_verify_failed(exc):
    """Whether ``exc`` (anywhere in its chain of wrapped errors) is a failed
    certificate verification: an untrusted, expired or mismatched
    certificate. Retrying cannot fix it."""
    import ssl

    seen = 0
    pending = [exc]
    while pending and seen < 20:
        err = pending.pop()
        seen += 1
        if isinstance(err, ssl.SSLCertVerificationError) or type(err).__name__ == "CertificateError":
            return True
        if isinstance(err, BaseException):
            pending.extend(a for a in err.args if isinstance(a, BaseException))
            pending.extend(e for e in (getattr(err, "reason", None), err.__cause__, err.__context__)
                           if isinstance(e, BaseException))
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def failure_result(kind, exc):
    """The result object for a request that got no HTTP response."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS verification failed" if _cert_verify_failed(exc) else "TLS setup failed"
    elif isinstance(exc, requests.exceptions.Timeout):
        reason = "Timed out"
    elif isinstance(exc, requests.exceptions.ProxyError):
        reason = "Proxy error"
    else:
        reason = "Connection failed"
    result = {
        "status_code": 0,
        "reason": reason,
        "response_headers": {},
        "json_body": None,
        "error": "%s: %s" % (type(exc).__name__, exc),
        "delivery": "not sent" if kind == "unsent" else "unknown",
    }
    if kind == "unsent":
        result["note"] = ("not sent: the connection or its TLS setup failed before any byte of the "
                          "request was written")
    return result


def _deadline_result(seconds, started):
    """A request reached or past the deadline. ``started``: whether any of
    it may have gone out (then it may have been processed)."""
    result = {"status_code": 0, "reason": "Deadline exceeded", "response_headers": {}, "json_body": None}
    if started:
        result["error"] = "the action's deadline of %g s was reached before the answer was complete" % seconds
        result["delivery"] = "unknown"
    else:
        result["delivery"] = "not sent"
        result["note"] = ("not sent: the action's deadline of %g s was reached before this request could "
                          "be sent; nothing of it left the machine" % seconds)
    return result


#: A socket timeout this close to the deadline is the deadline's doing (the
#: timeouts were cut to it), whichever of the two fired first.
_DEADLINE_SLACK = 0.25


def _classify(exc, watch=None):
    """'unsent' if the request surely never reached the server, else 'maybe_sent'.

    ``watch``: the attempt. When its connection was a watched one, whether a
    byte of the request was written is known, and decides; otherwise (a
    SOCKS proxy) the exception type does."""
    import requests
    from urllib3.exceptions import NewConnectionError

    if watch is not None and watch.watched:
        return "maybe_sent" if watch.sent else "unsent"
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return "unsent"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, NewConnectionError) or isinstance(reason, NewConnectionError):
            return "unsent"
    return "maybe_sent"


# ------------------------------------------------------------ TLS bundle
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def env_ca_bundle():
    """The CA bundle the environment names, or None. A name pointing to a
    missing, unreadable or invalid file (not a PEM bundle holding at least
    one certificate) is an InputError before anything is sent: requests
    would otherwise fail every request at the TLS setup with an error that
    reads like a network failure, though nothing left the machine."""
    for name in CA_BUNDLE_VARS:
        path = os.environ.get(name)
        if path:
            problem = _ca_bundle_problem(path)
            if problem:
                raise InputError("invalid environment: %s" % name,
                                 [{"path": "env." + name, "message": problem + "; fix the path or unset it"}])
            return path
    return None


def _ca_bundle_problem(path):
    """Why ``path`` cannot serve as a CA bundle, or None. Loading the bundle
    is what requests does on every connection (via
    ``SSLContext.load_verify_locations``), so the same call is the check; it
    is made once per version of the file (its size, modification and change
    times and inode): in this process, and across processes through a
    verdict kept in the cache directory (loading a system bundle of ~140
    certificates costs ~25 ms of every CLI run)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "points to a file that does not exist"
    except OSError as exc:
        return "points to a file that cannot be read (%s)" % (exc.strerror or type(exc).__name__)
    return _load_problem(path, info.st_mtime_ns, info.st_size, stat.S_ISDIR(info.st_mode),
                         (info.st_ino, info.st_dev, info.st_ctime_ns))


def _bundle_verdict_path(path, mtime_ns, size, identity):
    import hashlib

    from .filecache import cache_dir

    key = "\0".join(map(str, ("ca-bundle-ok", 1, os.path.abspath(path), mtime_ns, size) + tuple(identity)))
    return os.path.join(cache_dir(), "checked", "ca-" + hashlib.sha256(key.encode("utf-8", "surrogatepass"))
                        .hexdigest())


@functools.lru_cache(maxsize=16)
def _load_problem(path, mtime_ns, size, is_dir, identity=()):
    import ssl

    if is_dir:  # a c_rehash directory is read lazily, per certificate: only access is checkable
        if not os.access(path, os.R_OK | os.X_OK):
            return "points to a directory that cannot be read"
        return None
    verdict = _bundle_verdict_path(path, mtime_ns, size, identity) if identity else None
    if verdict is not None and os.path.isfile(verdict):
        return None  # this very file loaded fine before (only good verdicts are kept)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        return ("points to a file that is not a valid PEM CA bundle (%s)"
                % _short_text(str(getattr(exc, "reason", None) or exc), 120))
    except (OSError, ValueError) as exc:
        return "points to a file that cannot be read (%s)" % (getattr(exc, "strerror", None)
                                                              or type(exc).__name__)
    if verdict is not None:
        _remember_verdict(verdict)
    return None


def _remember_verdict(path):
    """Best effort, as the manifest's verdicts: an unwritable cache only costs speed."""
    from .state import _make_private_dirs

    try:
        _make_private_dirs(os.path.dirname(path))
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except OSError:
        pass


#: (URL, params) -> (the URL PreparedRequest.prepare_url makes of them, whether
#: it carries a user or password); a fan-out or a warm process sends to the
#: same few URLs, and the step costs ~35 us (parsing, IDNA, requoting)
_PREPARED_URLS = {}
_PREPARED_URLS_MAX = 256


#: parameter keys and values whose text requests writes one way per value and
#: type (1, 1.0 and True are equal keys of a dict, but "1", "1.0", "True")
_PLAIN_PARAM_TYPES = frozenset((str, bytes, int, float, type(None)))


def _url_key(url, params):
    """The remembering key of (url, params): every key and value with its
    type; None (not remembered) for anything else: a URL not str or bytes,
    params not a dict, list or tuple (a string, a generator), a value that
    is a list or a tuple, a pair that is not one."""
    if type(url) not in (str, bytes) or not isinstance(params, (dict, list, tuple)):
        return None  # an iterator would be used up here, and its query lost
    try:
        items = params.items() if isinstance(params, dict) else params
        key = [type(url), url, type(params)]
        for name, value in items:
            if type(name) not in _PLAIN_PARAM_TYPES or type(value) not in _PLAIN_PARAM_TYPES:
                return None
            # floats by their text: 0.0 == -0.0, but requests writes "0.0" and "-0.0"
            key.append((type(name), repr(name) if type(name) is float else name,
                        type(value), repr(value) if type(value) is float else value))
    except (TypeError, ValueError):
        return None
    return tuple(key)


def _prepare_url(prepared, url, params):
    """``prepared.prepare_url(url, params)``, remembered per ``_url_key`` (a
    pure function of them: a URL it refuses raises every time, as it is
    never remembered). Returns whether the URL carries a user or password."""
    from requests.utils import get_auth_from_url

    key = _url_key(url, params)
    found = None if key is None else _PREPARED_URLS.get(key)
    if found is None:
        prepared.prepare_url(url, params)
        found = (prepared.url, any(get_auth_from_url(prepared.url)))
        if key is not None:
            if len(_PREPARED_URLS) >= _PREPARED_URLS_MAX:
                _PREPARED_URLS.clear()
            _PREPARED_URLS[key] = found
    else:
        prepared.url = found[0]
    return found[1]


class HttpClient:
    """A requests.Session with the pack's transport rules.

    ``verify`` is True unless an asset says otherwise; then the CA bundle
    named by ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) is honoured, so a
    machine whose owner added a corporate CA keeps verifying instead of
    turning verification off. ``proxy`` (for both http and https) comes from
    the asset only: environment proxies and .netrc are ignored, so what an
    asset says is what happens. ``timeout`` is (connect, read) per attempt,
    always passed, cut to the deadline's time left.
    ``sleep`` is injectable so tests can run retry loops without waiting.
    """

    def __init__(self, verify=True, proxy=None, timeout=DEFAULT_TIMEOUT, sleep: Callable = time.sleep,
                 pool_size=10):
        import requests

        if verify is True:
            verify = env_ca_bundle() or True
        self.verify = verify
        self.timeout = timeout
        self.sleep = sleep
        self.session = _session_class()()
        self.session.trust_env = False  # proxies come from the asset only, never the environment
        adapter = _adapter_class()(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "line-connector/0.1"
        self.proxies = {"http": proxy, "https": proxy} if proxy else {}

    def close(self):
        self.session.close()

    def _prepare(self, request, headers):
        """The ``PreparedRequest`` that ``Session.request`` would make of this
        request, byte for byte (method, URL and query, the session's headers
        under the request's, body, Content-Length, the session's cookies),
        without its merging of settings that this session never has (no
        environment, no netrc, no session auth, params or hooks): about
        150 us of CPU per request, a tenth of a warm push. Then sent with
        ``Session.send`` as ``Session.request`` does (tests/reliability/
        test_transport.py compares the two on the wire)."""
        from requests.models import PreparedRequest
        from requests.structures import CaseInsensitiveDict

        merged = CaseInsensitiveDict(self.session.headers)
        merged.update(headers)
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]
        jar = self.session.cookies
        params = request.params or {}
        prepared = PreparedRequest()
        # PreparedRequest.prepare, step by step, with its URL step remembered
        prepared.prepare_method(request.method.upper())
        url_auth = _prepare_url(prepared, request.url, params)
        prepared.prepare_headers(merged)
        prepared.prepare_cookies(jar.copy() if len(jar) else None)
        prepared.prepare_body(request.body or {}, None, None)
        if url_auth:  # a user and password in the URL: requests makes them Basic auth
            prepared.prepare_auth(None, request.url)
        prepared.prepare_hooks(None)
        return prepared

    def _attempt_timeout(self, remaining):
        """(connect, read) for one attempt: the client's timeouts, cut to the
        time left."""
        connect, read = self.timeout
        return (min(connect, remaining), min(read, remaining))

    def send(self, request: Request):
        """Perform ``request`` under its retry policy and the current
        deadline (a default one when none is set); never raises for HTTP or
        network failures (they are results). Returns the result dict."""
        try:
            if _DEADLINE.get() is None:
                with deadline_scope(DEFAULT_DEADLINE):
                    return self._send(request)
            return self._send(request)
        finally:
            if request.limiter is not None:  # a concurrency slot never outlives the send
                request.limiter.release()

    def _send(self, request):
        import requests

        policy = request.retry
        deadline = _DEADLINE.get()
        started = time.monotonic()
        attempt = 0
        uncertain = False  # did any attempt possibly reach the server without a clear answer?
        result = None
        throttled = 0.0
        while True:
            if time_left() < MIN_ATTEMPT_TIME:
                if result is None:  # never started: say so, nothing left the machine
                    result = _deadline_result(deadline.seconds, started=False)
                break
            if request.limiter is not None:  # the rate limit's wait counts against the deadline
                waited, refused = request.limiter.wait(time_left() - MIN_ATTEMPT_TIME)
                throttled += waited
                if refused:
                    if result is None:
                        result = _deadline_result(deadline.seconds, started=False)
                        result["note"] = refused
                    break
            attempt += 1
            headers = dict(request.headers)
            if request.auth is not None:
                headers.update(request.auth.headers(self, request))  # may fetch a token: same deadline
                # plain str values: credentials are ``Secret`` (a str subclass with
                # a masked repr), which some requests versions refuse as a header
                headers = {name: str(value) for name, value in headers.items()}
            left = time_left()
            if left <= 0:  # the token fetch used it all: this attempt is not made
                attempt -= 1
                if result is None:
                    result = _deadline_result(deadline.seconds, started=False)
                break
            timeout = self._attempt_timeout(left)
            if attempt > 1:
                timeout = self._attempt_timeout(min(left, policy.deadline - (time.monotonic() - started)))
            retryable = False
            attempt_started = time.monotonic()
            with _Attempt(deadline.at) as watch:
                try:
                    resp = self.session.send(
                        self._prepare(request, headers), timeout=timeout, verify=self.verify,
                        proxies=self.proxies, allow_redirects=False, stream=True, cert=None)
                except (requests.exceptions.RequestException, ValueError) as exc:
                    # ValueError: not raised by a send of this session (its redirects
                    # are never read), kept as a result rather than a traceback if a
                    # requests version raises one (a malformed Location did)
                    kind = _classify(exc, watch)
                    if watch.fired or (isinstance(exc, requests.exceptions.Timeout)
                                       and time_left() <= _DEADLINE_SLACK):
                        result = _deadline_result(deadline.seconds, started=kind != "unsent")
                        uncertain = uncertain or kind != "unsent"
                    else:
                        result = failure_result(kind, exc)
                        uncertain = uncertain or kind == "maybe_sent"
                        if not isinstance(exc, requests.exceptions.SSLError):
                            # a certificate or CA bundle does not change by retrying
                            retryable = policy.retry_unsent if kind == "unsent" else policy.retry_maybe_sent
                else:
                    if watch.fired:
                        # cut while the head was arriving: what urllib3 parsed of a
                        # truncated header block (a status, some headers) is no answer
                        resp.close()
                        result = _deadline_result(deadline.seconds, started=True)
                        uncertain = True
                    else:
                        result = self._read(request, resp, watch, deadline)
                        if "error" in result:  # cut by the deadline or the size bound
                            # the answer could not be read whole, so whether the
                            # service accepted the request is not known (NXCloud
                            # and Sobot say so in the body), whatever the status
                            uncertain = True
                        else:
                            uncertain = uncertain or resp.status_code >= 500
                            retryable = resp.status_code in policy.retry_statuses or (
                                request.limiter is not None and request.limiter.retry(result))
            _observe(attempt_started)
            if request.limiter is not None:  # a concurrency slot is held only while a request is in flight
                request.limiter.release()
            if not retryable or attempt >= policy.max_attempts:
                break
            pause = policy.delay(attempt)
            if time.monotonic() - started + pause + MIN_ATTEMPT_TIME > policy.deadline \
                    or time_left() < pause + MIN_ATTEMPT_TIME:
                break
            self.sleep(pause)
            if time.monotonic() - started + MIN_ATTEMPT_TIME > policy.deadline:
                break  # the sleep overran: no attempt is started that could not finish in time
        if attempt:
            result["attempts"] = attempt
        if throttled:
            result["throttled_ms"] = round(throttled * 1000, 1)
        failed = result["status_code"] == 0 or result["status_code"] >= 400 or "error" in result
        if failed and uncertain and request.method != "GET":
            # an earlier or the last attempt may have been processed: never claim it was not
            result["delivery"] = "unknown"
        result.update(request.extra)
        return result

    def _read(self, request, resp, watch, deadline):
        """Read the body of ``resp`` within the deadline and the size bound;
        always closes the response. Returns the result."""
        body = bytearray()
        cut = None
        sink = request.stream_to if request.stream_to is not None and 200 <= resp.status_code < 300 else None
        try:
            for chunk in resp.iter_content(CHUNK):
                if sink is not None:
                    sink(chunk)  # the file holds the content: memory holds nothing of it
                else:
                    body += chunk
                    if len(body) > MAX_BODY:
                        cut = ("response body larger than %d MiB: the rest was not read (first %d KiB kept)"
                               % (MAX_BODY // (1024 * 1024), MAX_RAW_BODY // 1024))
                        del body[MAX_RAW_BODY:]
                        break
                if time.monotonic() >= deadline.at:
                    watch.fire()
                    break
        except Exception as exc:  # requests/urllib3 errors, or the sink's own
            if not watch.fired:
                cut = "the response body could not be read to the end: %s" % _short_text(
                    "%s: %s" % (type(exc).__name__, exc))
        finally:
            resp.close()
            watch.finish()
        if watch.fired and cut is None:
            cut = ("the action's deadline of %g s was reached while reading the response body; "
                   "the rest was not read" % deadline.seconds)
        return response_result(resp, bytes(body), cut)


_CLIENTS = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(verify=True, proxy=None, timeout=DEFAULT_TIMEOUT, pool_size=10):
    """A shared client per transport setting, so repeated runs in one process
    reuse connections. The environment's CA bundle is part of the setting
    (and checked here, before anything is sent)."""
    bundle = env_ca_bundle() if verify is True else None
    key = (bool(verify), bundle, proxy or None, tuple(timeout), pool_size, _PEER_POLICY.get())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = HttpClient(verify=verify, proxy=proxy, timeout=tuple(timeout),
                                                pool_size=pool_size)
    return client
