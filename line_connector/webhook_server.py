"""The local LINE webhook receiver behind ``line-connector webhook``: for
playbook development, it verifies each POST with the channel secret (the same
``actions.line.webhook.parse`` that ``line_parse_webhook`` uses) and prints
one JSON event per line on stdout.

It is built on the pack's hardened server base (``serverbase``), so a hostile
client gets an HTTP error or a closed connection within 30 s, never a
traceback; logs are JSON lines on stderr. An event is printed only when the
whole body verified, parsed and re-encoded as strict JSON: either every event
of a delivery is on stdout or none is.
"""
import json
import signal
import sys
import threading

from .actions.line.webhook import parse
from .serverbase import HardenedHandler, HardenedServer, HttpError, url_host


class _WebhookHandler(HardenedHandler):
    server_version = "line-connector-webhook"

    def handle_request(self):
        if self.command != "POST":
            raise HttpError(405, "only POST is accepted")
        server = self.server
        body = self.read_body().decode("utf-8", "replace")
        try:
            output, ok = parse(body, self.headers.get("x-line-signature"), server.secret)
            text = "".join(_event_line(event, server.out_encoding) for event in output["events"]) if ok else ""
        except RecursionError:  # a signed body nested deeper than Python's parser goes
            raise HttpError(400, "body is nested too deeply")
        except ValueError:  # NaN or Infinity inside an event: not printable as strict JSON
            raise HttpError(400, "body holds a number that is not valid JSON (NaN or Infinity)")
        if not ok:
            raise HttpError(400, output["error"])
        # every line was encoded above, so this one write cannot fail half-way
        # on a character: LINE redelivers a delivery answered 500, and any
        # event printed before the failure would be printed twice
        if text:
            with server.out_lock:
                server.out.write(text)
                server.out.flush()
        self.send_json(200, {})


def _event_line(event, encoding):
    """One event as a strict JSON line that ``encoding`` can write. Readable
    text (``ensure_ascii=False``) when it can; when it cannot (a lone
    surrogate such as ``"\\ud800"``, valid JSON escape syntax that no UTF-8
    stream can carry, or a character the stream's encoding lacks), the line
    with every non-ASCII character ``\\u``-escaped: the same JSON value, and
    pure ASCII. ValueError for NaN or Infinity."""
    line = json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        line.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        line = json.dumps(event, ensure_ascii=True, allow_nan=False) + "\n"
    return line


class WebhookServer(HardenedServer):
    server_name_for_logs = "line-connector-webhook"

    def __init__(self, address, secret, out=None, **options):
        self.secret = secret
        self.out = out if out is not None else sys.stdout
        # what the stream can write; a stream without an encoding (StringIO) takes any str but
        # a lone surrogate must still not reach a reader as invalid UTF-8
        self.out_encoding = getattr(self.out, "encoding", None) or "utf-8"
        self.out_lock = threading.Lock()
        super().__init__(address, _WebhookHandler, **options)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return "http://%s:%d/" % (url_host(host), port)


def make_server(secret, host="127.0.0.1", port=0, out=None, **options):
    """A bound, not yet serving WebhookServer, IPv4 or IPv6 as ``host`` is.
    Binding errors (port in use, bad address) raise OSError (a host that does
    not resolve: socket.gaierror; an empty host: ValueError, since it would
    listen on every interface): the caller decides what they mean."""
    return WebhookServer((host, port), secret, out=out, **options)


def serve(secret, host="127.0.0.1", port=8000, out=None):
    """Serve until SIGTERM or Ctrl-C; announces its URL as one JSON line on
    stderr. Raises OSError when the address cannot be bound."""
    server = make_server(secret, host, port, out=out)
    server.log("listening", message="webhook receiver listening on %s (Ctrl-C to stop)" % server.url,
               url=server.url)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
