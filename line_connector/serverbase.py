"""The hardened base of the pack's own HTTP servers (the sandbox and the
webhook receiver), on the standard library's ``http.server``.

Why this exists: ``http.server`` trusts its client. It believes any
``Content-Length`` (``-1`` or ``10**12`` included), waits forever for headers
that never finish or a body that drips a byte at a time, starts one thread per
connection without limit, and prints a traceback for a client that hangs up.
A development server must still never be the thing a hostile or broken
client can wedge or crash, so every server of the pack is built on this base:

* **request size**: ``Content-Length`` must be one non-negative decimal
  number (duplicates must agree); anything else is 400 before a byte of the
  body is read, more than ``MAX_BODY`` is 413 unread, a chunked request body
  is 411. After such an answer the connection is closed (the unread body
  would otherwise be parsed as the next request).
* **time**: every socket read waits at most ``READ_TIMEOUT`` seconds, the
  request line and headers must arrive within ``HEADER_DEADLINE`` of the
  first byte being awaited (an idle keep-alive connection included), and the
  body within ``BODY_DEADLINE`` of the headers. Past that the connection is
  closed. So a bad request ends within ~25 s, inside SPEC 7's 30 s.
* **threads**: at most ``max_connections`` connections are served at once;
  one more is answered 503 and closed at once by the accepting thread.
* **errors and logs**: a client that disconnects mid-body or mid-answer is a
  log line; any other exception in a handler is a 500 JSON answer and one log
  line. Logs are JSON lines on stderr, nothing else (no traceback, no
  access-log text), so a caller can parse everything the server says.
"""
import io
import ipaddress
import json
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 10 * 1024 * 1024
READ_TIMEOUT = 10.0
HEADER_DEADLINE = 10.0
BODY_DEADLINE = 15.0
WRITE_TIMEOUT = 10.0
MAX_CONNECTIONS = 128

_DIGITS = re.compile(r"[0-9]{1,20}")
_DISCONNECTED = (ConnectionError, BrokenPipeError)


def address_family_for(host):
    """The socket family to listen on ``host`` with: ``AF_INET6`` for an IPv6
    address (``::1``, ``::``, ``fe80::1%eth0``), ``AF_INET`` for an IPv4 one,
    and for a name the family it resolves to (IPv4 preferred, as
    ``http.server`` always used it). ``socketserver`` binds with a fixed
    ``AF_INET``, which cannot bind an IPv6 address at all.

    Raises ValueError for an empty host (``bind(("", port))`` would
    silently listen on every interface) and ``socket.gaierror`` for a host
    that is neither an address nor a name this machine resolves."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError("the host is empty")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        ip = None
    if ip is not None:
        return socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    # refused without asking a resolver (which may query DNS): blanks or control
    # characters, and digits-and-dots that are no IPv4 address (999.1.1.1)
    if re.search(r"[\s\x00-\x1f\x7f]", host) or re.fullmatch(r"[0-9.]+", host):
        raise socket.gaierror(socket.EAI_NONAME, "not an IP address or a valid host name")
    families = {info[0] for info in socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)}
    return socket.AF_INET if socket.AF_INET in families or not families else socket.AF_INET6


def url_host(host):
    """``host`` as it goes into a URL: an IPv6 address in brackets."""
    return "[%s]" % host if ":" in host else host


class HttpError(Exception):
    """Raised by a handler to answer ``status`` with ``{"message": ...}``."""

    def __init__(self, status, message, close=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose every read is bounded by the
    handler's current deadline (and by READ_TIMEOUT): a per-read timeout
    alone lets a client dripping one byte every few seconds hold the thread
    forever."""

    def __init__(self, handler):
        super().__init__()
        self._handler = handler

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        sock = self._handler.connection
        sock.settimeout(min(self._handler.read_timeout, left))
        n = sock.recv_into(buffer)
        self._handler.bytes_in += n
        return n


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class JsonLog:
    """One JSON object per line on ``stream`` (stderr by default), written
    whole under a lock so concurrent threads never interleave."""

    def __init__(self, server_name, stream=None):
        self.server_name = server_name
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event, **fields):
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "server": self.server_name,
                  "event": event}
        record.update(fields)
        line = json.dumps(record, ensure_ascii=True, default=str) + "\n"
        stream = self.stream or sys.stderr
        with self._lock:
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):  # stderr closed: nothing better to do
                pass


class HardenedHandler(BaseHTTPRequestHandler):
    """Subclasses implement ``handle_request()`` and call ``read_body()`` and
    ``send_json()``; they may raise ``HttpError``."""

    protocol_version = "HTTP/1.1"
    # small writes must leave at once: with Nagle on, every keep-alive
    # response would wait ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    timeout = READ_TIMEOUT
    read_timeout = READ_TIMEOUT
    header_deadline = HEADER_DEADLINE
    body_deadline = BODY_DEADLINE
    max_body = MAX_BODY

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):  # accepted without a handshake: do it here, bounded
            self.request.settimeout(min(self.read_timeout, self.header_deadline))
            # a handshake dripped a byte at a time is cut at the header deadline
            watchdog = threading.Timer(self.header_deadline, _shutdown, (self.request,))
            watchdog.daemon = True
            watchdog.start()
            try:
                self.request.do_handshake()
            finally:
                watchdog.cancel()
        super().setup()
        self.deadline = time.monotonic() + self.header_deadline
        self.bytes_in = 0
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    # ------------------------------------------------------------ logging
    def log(self, event, **fields):
        self.server.log(event, client=self.client_address[0] if self.client_address else None, **fields)

    def log_message(self, fmt, *args):
        """The standard library's text log lines become JSON (only errors are
        logged: ``log_request`` is quiet). An idle keep-alive connection
        closed at the header deadline is normal, not logged."""
        if fmt.startswith("Request timed out"):
            if self.bytes_in:
                self.log("timeout", phase="headers")
            return
        self.log("http_error", message=(fmt % args) if args else fmt)

    def log_request(self, code="-", size="-"):
        if getattr(self.server, "access_log", False):
            self.log("request", method=getattr(self, "command", None), path=getattr(self, "path", None),
                     status=int(code) if str(code).isdigit() else str(code))

    def send_error(self, code, message=None, explain=None):
        """Errors the standard library answers itself (bad request line,
        headers too long or too many, unsupported method) in JSON, and the
        connection closed."""
        self.log_message("%d %s", code, message or "")
        self.close_connection = True
        if not hasattr(self, "command"):
            self.command = None
        if getattr(self, "request_version", None) in (None, "HTTP/0.9"):
            self.request_version = "HTTP/1.0"  # no HTTP/0.9 here: always a status line
        try:
            self._write_json(code, {"message": message or self.responses.get(code, ("error",))[0]},
                             {"Connection": "close"}, head=self.command == "HEAD")
        except _DISCONNECTED + (socket.timeout, OSError):
            pass

    # ------------------------------------------------------------ request
    def handle_one_request(self):
        # the request line and headers of this request (or the idle wait for
        # it on a keep-alive connection) must arrive before this deadline
        self.deadline = time.monotonic() + self.header_deadline
        self.bytes_in = 0
        try:
            super().handle_one_request()
        except socket.timeout:
            self.log("timeout", phase="headers")
            self.close_connection = True
        except _DISCONNECTED as exc:
            self.log("client_disconnected", phase="headers", error=type(exc).__name__)
            self.close_connection = True
        except OSError as exc:
            self.log("connection_error", phase="headers", error=type(exc).__name__)
            self.close_connection = True

    def handle_expect_100(self):
        """Refuse a bad length before inviting the client to send the body."""
        try:
            self.content_length()
        except HttpError as exc:
            self.headers_sent = False
            self.close_connection = True
            self.log("bad_request", status=exc.status, message=exc.message, method=self.command)
            self._answer_error(exc.status, exc.message)
            return False
        return super().handle_expect_100()

    def content_length(self):
        """The declared body length, checked, or HttpError. None when the
        request has no body header."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(411, "chunked request bodies are not accepted: send Content-Length", close=True)
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        cleaned = {v.strip() for v in values}
        if len(cleaned) != 1:
            raise HttpError(400, "conflicting Content-Length headers", close=True)
        value = cleaned.pop()
        if not _DIGITS.fullmatch(value):
            raise HttpError(400, "Content-Length must be a non-negative decimal number", close=True)
        length = int(value)
        if length > self.max_body:
            raise HttpError(413, "request body larger than %d bytes" % self.max_body, close=True)
        return length

    def read_body(self):
        """The request body (bytes), read under BODY_DEADLINE. Raises
        HttpError for a bad length, socket.timeout or ConnectionError for a
        client that is too slow or hangs up."""
        length = self.content_length()
        self.body_read = True
        if not length:
            return b""
        self.deadline = time.monotonic() + self.body_deadline
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("client closed the connection after %d of %d body bytes"
                                       % (len(body), length))
        return body

    def _dispatch(self):
        self.headers_sent = False
        self.body_read = False
        try:
            self.handle_request()
        except HttpError as exc:
            # a body left unread would be parsed as the next request
            if exc.close or (not self.body_read and (self.headers.get("Transfer-Encoding") is not None
                                                     or self.headers.get("Content-Length", "0").strip() != "0")):
                self.close_connection = True
            self.log("bad_request", status=exc.status, message=exc.message, method=self.command)
            self._answer_error(exc.status, exc.message)
        except socket.timeout:
            self.log("timeout", phase="body_or_answer", method=self.command)
            self.close_connection = True
        except _DISCONNECTED as exc:
            self.log("client_disconnected", phase="body_or_answer", error=type(exc).__name__)
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a handler bug is a 500, never a traceback
            self.log("internal_error", error=type(exc).__name__, method=self.command,
                     path=self.path.split("?")[0][:200])
            self.close_connection = True
            self._answer_error(500, "internal error (%s)" % type(exc).__name__)

    # HEAD too: handle_request decides (405 or an answer), send_json leaves the body out
    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def handle_request(self):
        raise HttpError(405, "method not allowed")

    # ------------------------------------------------------------ answer
    def _answer_error(self, status, message):
        if self.headers_sent:  # too late for a status line: just close
            self.close_connection = True
            return
        try:
            self.send_json(status, {"message": message},
                           {"Connection": "close"} if self.close_connection else None)
        except _DISCONNECTED + (socket.timeout,):
            self.close_connection = True

    def send_json(self, status, body, headers=None, content_type="application/json"):
        """Answer ``status`` with ``body`` (JSON-able, or bytes as is)."""
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif body is None:
            data = b""
        else:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        # a HEAD answer has the headers a GET would have and never a body
        self._write_json(status, data, headers, content_type=content_type,
                         head=getattr(self, "command", None) == "HEAD")

    def _write_json(self, status, data, headers=None, content_type="application/json", head=False):
        if not isinstance(data, bytes):
            data = json.dumps(data).encode("utf-8")
        self.connection.settimeout(WRITE_TIMEOUT)
        self.headers_sent = True
        self.send_response(status)
        if data or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)


class HardenedServer(ThreadingHTTPServer):
    """A threaded server with a bounded number of connections served at once
    and JSON-line logging of anything that goes wrong."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of connections waits in the backlog, not in SYN retries
    server_name_for_logs = "line-connector"

    def __init__(self, address, handler_class, max_connections=MAX_CONNECTIONS, log_stream=None, access_log=False):
        self.log = JsonLog(self.server_name_for_logs, log_stream)
        self.access_log = access_log
        self._slots = threading.BoundedSemaphore(max_connections)
        self.address_family = address_family_for(address[0])
        super().__init__(address, handler_class)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.log("connection_refused", client=client_address[0], reason="too many connections")
            body = b'{"message":"too many connections, try again later"}'
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        """Whatever escaped a handler: one JSON line, never a traceback."""
        exc = sys.exc_info()[1]
        self.log("connection_error", client=client_address[0] if client_address else None,
                 error=type(exc).__name__ if exc else None)
