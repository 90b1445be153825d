"""Where a webhook route hands its events over (SPEC 9, ``forward:``).

A sink either has every event of a hand-over or raises ``SinkError``: the
ingress (``line_connector.service.webhooks``) answers LINE 200 only when
every sink returned, and 500 otherwise so that LINE redelivers. So each sink
does all it can to make a failure leave nothing behind:

* ``jsonl: PATH``: one JSON line per event, appended under an OS file lock
  (one writer at a time across threads and processes, so lines never
  interleave), ``fsync``'d before returning. A failed write is truncated back
  to where it began, so the file never holds half a hand-over or a torn line.
  The file is created 0600 (events carry user ids and message texts); a
  symlink, FIFO or any non-regular file at the path is refused, never
  followed or blocked on.
* ``http: URL``: one POST of ``{"destination", "events": [...]}`` through the
  pack's one transport (``line_connector.http``: TLS verified, bounded in
  time and memory). Connection errors and 5xx are retried a bounded number
  of times within a deadline; only a 2xx answer is success (a redirect is
  not followed: it is a failure, since the events did not arrive).
* ``redis_stream: {url, stream, maxlen}``: one ``XADD`` per event (fields
  ``event``: the event JSON, ``destination``), all of a hand-over in one
  MULTI/EXEC so a failure adds none of them; ``MAXLEN ~ maxlen`` bounds the
  stream; the official ``redis`` client with bounded socket timeouts.

Sink URLs may carry credentials (``https://user:pw@host``, a token in the
query, ``redis://:pw@host``): ``describe()`` names a sink by its place in the
config and its type only, and no error message of a sink holds a URL or a
client library's exception text (which may quote one).

A failed hand-over is retried by LINE's redelivery as a whole: a sink that
had already taken the events may then get them twice. That (and a state
store failing while the events are marked) is the only case where a sink
sees an event twice (see the ingress' docstring).
"""
import contextlib
import errno
import json
import os
import stat
import threading
import time

from .errors import InputError
from .output import SERVICE_EXTRA_HINT

#: seconds one hand-over to an http sink may take, retries included
HTTP_DEADLINE = 10.0
#: (connect, read) seconds per attempt of an http sink
HTTP_TIMEOUT = (3.0, 5.0)
HTTP_ATTEMPTS = 3
#: seconds a jsonl sink waits for the file lock held by another writer
FILE_LOCK_WAIT = 10.0
#: seconds a redis_stream sink waits to connect, and for each answer
REDIS_TIMEOUT = 5.0
DEFAULT_MAXLEN = 100000
SINK_TYPES = ("jsonl", "http", "redis_stream")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SERVICE_EXTRA = SERVICE_EXTRA_HINT


class SinkError(Exception):
    """A sink did not take the events. The message names the sink by place
    and type and says why, without any URL or credential."""


def event_line(event, encoding="utf-8"):
    """One event as a strict JSON line that ``encoding`` can write. Readable
    text (``ensure_ascii=False``) when it can; when it cannot (a lone
    surrogate such as ``"\\ud800"``, valid JSON escape syntax that no UTF-8
    stream can carry, or a character the stream's encoding lacks), the line
    with every non-ASCII character ``\\u``-escaped: the same JSON value, and
    pure ASCII. ValueError for NaN or Infinity (not JSON)."""
    line = json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        line.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        line = json.dumps(event, ensure_ascii=True, allow_nan=False) + "\n"
    return line


class Sink:
    """``hand_over(destination, events)`` returns once the sink has every
    event, or raises SinkError. ``where`` is the sink's place in the config
    (``config.webhooks.ops.forward[0]``): what logs and errors name."""

    kind = "sink"

    def __init__(self, where):
        self.where = where

    def describe(self):
        return "%s (%s)" % (self.where, self.kind)

    def hand_over(self, destination, events):
        raise NotImplementedError

    def close(self):
        pass

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.describe())


# ------------------------------------------------------------------ jsonl
def _lock_file(fd, wait):
    """Exclusive OS lock on ``fd`` (flock: per open file, so threads of one
    process exclude each other too), polled up to ``wait`` seconds."""
    from .state import _os_lock

    started, pause = time.monotonic(), 0.002
    while not _os_lock(fd):
        if time.monotonic() - started >= wait:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


class JsonlSink(Sink):
    kind = "jsonl"

    def __init__(self, path, where="jsonl", lock_wait=FILE_LOCK_WAIT):
        super().__init__(where)
        self.path = path
        self.lock_wait = lock_wait

    def _open(self):
        flags = os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _NONBLOCK | _CLOEXEC
        created = False
        try:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, getattr(errno, "EMLINK", -1), getattr(errno, "EFTYPE", -1)):
                raise SinkError("%s: the path is a symlink; refusing to follow it" % self.describe()) from None
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                raise SinkError("%s: the path is not a regular file" % self.describe()) from None
            raise SinkError("%s: cannot open the file (%s)" % (self.describe(), exc.strerror
                                                               or type(exc).__name__)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SinkError("%s: the path is not a regular file" % self.describe())
            if created and hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # 0600 whatever the umask, before any byte is written
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def hand_over(self, destination, events):
        data = "".join(event_line(e) for e in events).encode("utf-8")
        if not data:
            return
        fd = self._open()
        try:
            if not _lock_file(fd, self.lock_wait):
                raise SinkError("%s: another writer held the file lock for %g s" % (self.describe(),
                                                                                 self.lock_wait))
            start = None
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError as exc:
                if start is not None:  # never leave half a hand-over or a torn line behind
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                        os.fsync(fd)
                raise SinkError("%s: cannot write the file (%s)" % (self.describe(), exc.strerror
                                                                    or type(exc).__name__)) from None
            finally:
                from .state import _os_unlock

                with contextlib.suppress(OSError):
                    _os_unlock(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- stream
class StreamSink(Sink):
    """A text stream (stdout for ``line-connector webhook``): one JSON event
    per line, every line encoded before any is written, so a delivery is
    written whole or not at all."""

    kind = "stdout"

    def __init__(self, stream, where="stdout"):
        super().__init__(where)
        self.stream = stream
        # what the stream can write; a stream without an encoding (StringIO) takes any str but
        # a lone surrogate must still not reach a reader as invalid UTF-8
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self._lock = threading.Lock()

    def hand_over(self, destination, events):
        text = "".join(event_line(e, self.encoding) for e in events)
        if not text:
            return
        try:
            with self._lock:
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError) as exc:
            raise SinkError("%s: cannot write (%s)" % (self.describe(), type(exc).__name__)) from None


# ------------------------------------------------------------------ http
class HttpSink(Sink):
    kind = "http"

    def __init__(self, url, where="http", deadline=HTTP_DEADLINE, timeout=HTTP_TIMEOUT, attempts=HTTP_ATTEMPTS,
                 verify=True):
        super().__init__(where)
        self.url = url
        self.deadline = deadline
        self.timeout = tuple(timeout)
        self.attempts = attempts
        self.verify = verify

    def __repr__(self):  # never the URL: it may hold a password or a token
        return "<HttpSink %s>" % self.describe()

    def hand_over(self, destination, events):
        from .http import Request, RetryPolicy, client_for, deadline_scope, json_bytes

        try:
            body = json_bytes({"destination": destination, "events": events})
        except ValueError:
            raise SinkError("%s: the events are not strict JSON" % self.describe()) from None
        policy = RetryPolicy(max_attempts=self.attempts, deadline=self.deadline, backoff=0.2, backoff_max=2.0,
                             retry_statuses=frozenset(range(500, 600)), retry_unsent=True,
                             retry_maybe_sent=True)
        request = Request("POST", self.url, headers={"Content-Type": "application/json"}, body=body,
                          retry=policy)
        try:
            with deadline_scope(self.deadline):
                result = client_for(verify=self.verify, timeout=self.timeout).send(request)
        except InputError as exc:  # a bad CA bundle named by the environment
            raise SinkError("%s: %s" % (self.describe(), exc.message)) from None
        status = result.get("status_code") or 0
        if 200 <= status < 300 and "error" not in result:
            return
        # the result's "error" text is never used: it may quote the URL (query, user info)
        if status:
            why = "answered HTTP %d" % status
        else:
            why = str(result.get("reason") or "no answer")
        raise SinkError("%s: %s after %d attempt(s)" % (self.describe(), why, result.get("attempts", 1)))


# ----------------------------------------------------------- redis_stream
class RedisStreamSink(Sink):
    kind = "redis_stream"

    def __init__(self, url, stream, maxlen=DEFAULT_MAXLEN, where="redis_stream", timeout=REDIS_TIMEOUT):
        super().__init__(where)
        try:
            import redis
        except ImportError:
            raise InputError("the redis_stream sink needs the redis client",
                             [{"path": where, "message": "needs the redis client: %s" % _SERVICE_EXTRA}]) from None
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.stream = stream
        self.maxlen = maxlen
        try:
            # one reconnect at most (the client's default retries would multiply the timeouts)
            self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                retry=Retry(NoBackoff(), 1), retry_on_timeout=False,
                                                health_check_interval=30)
        except ValueError:  # the client's message may quote the URL
            raise InputError("invalid redis_stream url",
                             [{"path": where + ".url", "message": "is not a Redis URL the client accepts "
                                                                  "(redis://[:password@]host:port/db)"}]) from None
        self._errors = (redis.RedisError, OSError)

    def __repr__(self):
        return "<RedisStreamSink %s>" % self.describe()

    def hand_over(self, destination, events):
        lines = [event_line(e).rstrip("\n") for e in events]
        if not lines:
            return
        try:
            with self._client.pipeline(transaction=True) as pipe:
                for line in lines:
                    fields = {"event": line}
                    if isinstance(destination, str):
                        fields["destination"] = destination
                    pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                pipe.execute()
        except self._errors as exc:  # never the exception's text: it may quote the URL
            raise SinkError("%s: Redis failed (%s)" % (self.describe(), type(exc).__name__)) from None

    def close(self):
        with contextlib.suppress(Exception):
            self._client.close()


# ------------------------------------------------------------ from config
def url_secrets(url):
    """The parts of a sink URL that may be credentials (password, user,
    query values), for a redactor."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    out = []
    try:
        parts = urlsplit(url)
        for value in (parts.password, parts.username):
            if value:
                out += [value, unquote(value)]
        for _, value in parse_qsl(parts.query, keep_blank_values=False):
            if len(value) >= 4:
                out.append(value)
    except (ValueError, TypeError):
        pass
    return [s for s in out if s]


def build_sinks(forward, where, redactor=None):
    """The sinks of one route's ``forward`` list (already schema-checked by
    the config loader; checked again here for callers that build a route
    themselves). An unknown sink type is an InputError naming its key.
    Every credential found in a sink URL is added to ``redactor``."""
    if not isinstance(forward, list) or not forward:
        raise InputError("invalid webhook route", [{"path": where, "message": "must list at least one sink"}])
    sinks, details = [], []
    for i, item in enumerate(forward):
        place = "%s[%d]" % (where, i)
        if not isinstance(item, dict) or len(item) != 1:
            details.append({"path": place, "message": "must name exactly one sink: %s" % ", ".join(SINK_TYPES)})
            continue
        (kind, value), = item.items()
        if kind not in SINK_TYPES:
            details.append({"path": "%s.%s" % (place, kind), "message": "is not a sink type (known: %s)"
                                                                     % ", ".join(SINK_TYPES)})
            continue
        if kind == "jsonl":
            sinks.append(JsonlSink(value, where=place))
            continue
        url = value if kind == "http" else (value or {}).get("url")
        if redactor is not None and isinstance(url, str):
            for secret in url_secrets(url):
                redactor.add(secret)
        if kind == "http":
            sinks.append(HttpSink(value, where=place))
        else:
            try:
                sinks.append(RedisStreamSink(value["url"], value["stream"], value.get("maxlen", DEFAULT_MAXLEN),
                                             where=place))
            except InputError as exc:
                details.extend(exc.details)
    if details:
        for sink in sinks:
            sink.close()
        raise InputError("invalid webhook sinks", details)
    return sinks


__all__ = ["Sink", "SinkError", "JsonlSink", "StreamSink", "HttpSink", "RedisStreamSink", "build_sinks",
           "event_line", "url_secrets", "SINK_TYPES"]
