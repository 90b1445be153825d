"""The sandbox's HTTP plumbing: a threaded server on 127.0.0.1, a route
table filled by the vendor emulators, and fault injection.

Faults (scripted for the first requests with ``script``, then chosen per
request at ``rate`` with a seeded RNG):

* ``500`` / ``503`` / ``429``: answered at once, the request NOT processed;
* ``slow``: processed, then the answer is delayed by ``slow_seconds`` (past
  the client's read timeout: the classic duplicate trap);
* ``reset``: the connection is dropped before processing;
* ``reset_after``: processed, then the connection is dropped unanswered.
"""
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("500", "503", "429", "slow", "reset", "reset_after")


@dataclass
class Incoming:
    method: str
    path: str
    query: dict
    headers: dict          # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

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

    def __init__(self, rate=0.0, kinds=FAULT_KINDS, seed=None, slow_seconds=2.0, skip_paths=(), script=()):
        unknown = (set(kinds) | {k for k in script if k}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError("unknown fault kind(s): %s" % ", ".join(sorted(unknown)))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.slow_seconds = slow_seconds
        self.skip_paths = tuple(skip_paths)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._script = list(script)  # faults for the first requests, in order (None: no fault)
        self.injected = {}

    def draw(self, path):
        if path.startswith(self.skip_paths):
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "line-connector-sandbox"
    # small writes must leave at once: with Nagle on, every keep-alive
    # response would wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet: tests and the CLI read stdout/stderr
        pass

    def _handle(self):
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        incoming = Incoming(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                            {k.lower(): v for k, v in self.headers.items()}, body)
        fault = sandbox.faults.draw(parts.path)
        if fault in ("500", "503", "429"):
            return self._send(_fault_reply(fault))
        if fault == "reset":
            return self._drop()
        reply = sandbox.dispatch(incoming)
        if fault == "slow":
            time.sleep(sandbox.faults.slow_seconds)
        if fault == "reset_after":
            return self._drop()
        self._send(reply)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, reply):
        if isinstance(reply.body, (bytes, bytearray)):
            data = bytes(reply.body)
        elif reply.body is None:
            data = b""
        else:
            data = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(reply.status)
            if data or reply.status not in (204, 304):
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _fault_reply(kind):
    status = int(kind)
    messages = {500: "Internal server error (sandbox fault)", 503: "Service unavailable (sandbox fault)",
                429: "The API rate limit has been exceeded. Try again later. (sandbox fault)"}
    return Reply(status, {"message": messages[status]})


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sandbox):
        self.sandbox = sandbox
        super().__init__(address, _Handler)
