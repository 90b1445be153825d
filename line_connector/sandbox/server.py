"""The sandbox's HTTP plumbing: a threaded server on 127.0.0.1, a route
table filled by the vendor emulators, and fault injection. The server itself
is the pack's hardened base (``line_connector.serverbase``): bounded request
sizes, read deadlines, a cap on connections, JSON-line logs only.

Faults (scripted for the first requests with ``script``, then chosen per
request at ``rate`` with a seeded RNG):

* ``500`` / ``503`` / ``429``: answered at once, the request NOT processed
  (``429``: LINE's monthly limit body, which a client must not retry;
  ``429_rate`` / ``429_concurrency``: LINE's rate and concurrency limit
  bodies, which LINE asks clients to retry later);
* ``slow``: processed, then the answer is delayed by ``slow_seconds`` (past
  the client's read timeout: the classic duplicate trap);
* ``reset``: the connection is dropped before processing;
* ``reset_after``: processed, then the connection is dropped unanswered;
* ``drip``: processed, then the status line and headers are sent at once and
  the body one byte every ``drip_interval`` seconds (1 s by default): a read
  timeout never fires, only a total deadline ends it;
* ``endless``: processed, then a 200 with a chunked body that never ends
  (64 KiB chunks as fast as the client reads, for up to ``endless_seconds``,
  after which the connection is dropped): only a bounded body read ends it.
"""
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from ..serverbase import HardenedHandler, HardenedServer

FAULT_KINDS = ("500", "503", "429", "slow", "reset", "reset_after", "drip", "endless", "429_rate",
               "429_concurrency")
#: What a FaultPlan injects unless told: drip and endless only on request,
#: since they hold a client without a total deadline for minutes.
DEFAULT_KINDS = ("500", "503", "429", "slow", "reset", "reset_after")


@dataclass
class Incoming:
    method: str
    path: str
    query: dict
    headers: dict          # lower-cased names
    body: bytes
    params: dict = field(default_factory=dict)  # {name} segments of a pattern route

    def json(self):
        """The body as JSON; ValueError for anything else, a nesting too deep
        for Python's parser included (the emulators answer it as bad JSON)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except RecursionError:
            raise ValueError("the request body is nested too deeply") from None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Reply:
    status: int
    body: object = None            # JSON-able, or bytes for raw bodies
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"


class FaultPlan:
    """Which requests fail, and how. Thread-safe, reproducible with ``seed``."""

    def __init__(self, rate=0.0, kinds=DEFAULT_KINDS, seed=None, slow_seconds=2.0, skip_paths=(), script=(),
                 drip_interval=1.0, endless_seconds=300.0):
        unknown = (set(kinds) | {k for k in script if k}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError("unknown fault kind(s): %s" % ", ".join(sorted(unknown)))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.slow_seconds = slow_seconds
        self.drip_interval = drip_interval
        self.endless_seconds = endless_seconds
        self.skip_paths = tuple(skip_paths)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script = list(script)  # faults for the first requests, in order (None: no fault)
        self.injected = {}

    def draw(self, path):
        # the stats are how a test or a user reads what the faults did: never one of them,
        # and a stats read never uses up a scripted fault meant for a vendor request
        if path == STATS_PATH or path.startswith(self.skip_paths):
            return None
        with self._lock:
            if self._script:
                kind = self._script.pop(0)
            elif not self.rate or not self.kinds or self._rng.random() >= self.rate:
                return None
            else:
                kind = self._rng.choice(self.kinds)
            if kind:
                self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind


#: what the sandbox counted (``Sandbox.stats``); never given a fault
STATS_PATH = "/_sandbox/stats"


class _Handler(HardenedHandler):
    server_version = "line-connector-sandbox"
    # LINE answers a method it does not serve with 405 (a known path) or 404,
    # never 501: the sandbox routes every method like any other (Sandbox.dispatch)
    do_OPTIONS = do_TRACE = HardenedHandler._dispatch

    def __getattr__(self, name):
        # any other method token (PROPFIND, FOO...): http.server asks for do_<METHOD>
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._dispatch
        raise AttributeError(name)

    def handle_request(self):
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        body = self.read_body()
        incoming = Incoming(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                            {k.lower(): v for k, v in self.headers.items()}, body)
        faults = sandbox.faults
        fault = faults.draw(parts.path)
        if fault in ("500", "503", "429", "429_rate", "429_concurrency"):
            return self._send(_fault_reply(fault))
        if fault == "reset":
            return self._drop()
        reply = sandbox.dispatch(incoming)
        if fault == "slow":
            time.sleep(faults.slow_seconds)
        if fault == "reset_after":
            return self._drop()
        if fault == "drip":
            return self._drip(reply, faults.drip_interval)
        if fault == "endless":
            return self._endless(faults.endless_seconds)
        self._send(reply)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, reply):
        self.send_json(reply.status, reply.body, reply.headers, content_type=reply.content_type)

    def _drip(self, reply, interval):
        """The whole answer's headers now, its body a byte at a time. Ends
        when the body is out or the client hangs up (a write error)."""
        data = _encode(reply.body)
        self.close_connection = True
        self.headers_sent = True
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(len(data)):
            time.sleep(interval)
            self.wfile.write(data[i:i + 1])

    def _endless(self, seconds):
        """A 200 whose chunked body never ends (until ``seconds`` pass or the
        client hangs up; then the connection is dropped, unterminated)."""
        self.close_connection = True
        self.headers_sent = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * (64 * 1024))
        stop = time.monotonic() + seconds
        self.wfile.write(b"6\r\n{\"a\":[\r\n")
        while time.monotonic() < stop:
            self.wfile.write(chunk)
        self._drop()


def _encode(body):
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if body is None:
        return b""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _fault_reply(kind):
    from ..ratelimit import CONCURRENCY_TEXT, MONTHLY_TEXT, RATE_TEXT

    messages = {"500": "Internal server error (sandbox fault)", "503": "Service unavailable (sandbox fault)",
                "429": MONTHLY_TEXT, "429_rate": RATE_TEXT, "429_concurrency": CONCURRENCY_TEXT}
    return Reply(int(kind[:3]), {"message": messages[kind]})


class SandboxServer(HardenedServer):
    server_name_for_logs = "line-connector-sandbox"

    def __init__(self, address, sandbox, **options):
        self.sandbox = sandbox
        super().__init__(address, _Handler, **options)
