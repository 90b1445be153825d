"""The local LINE webhook receiver behind ``line-connector webhook``: for
playbook development. It runs the service's own webhook ingress
(``line_connector.service.webhooks.Ingress``) with one route, the channel
secret given on the command line's environment variable, and one sink:
stdout, one JSON event per line. This module only adapts HTTP to
``Ingress.handle``; verification, parsing, de-duplication and hand-over
are the ingress' (so what a developer sees here is what ``serve`` does).

It is built on the pack's hardened server base (``serverbase``), so a hostile
client gets an HTTP error or a closed connection within 30 s, never a
traceback; logs are JSON lines on stderr. Every event of a delivery is
encoded before any is written: either every event of a delivery is on
stdout or none is. Like the service, it prints an event already printed
(same ``webhookEventId``, a redelivery) only once while it runs; a duplicate
is logged. The ids are kept in memory, for this run only: a developer who
restarts the receiver to replay a test event sees it again, and nothing is
left in the cache directory (``serve`` keeps them in its state store, 24 h,
because there a second delivery would reach a playbook twice).
Any path is accepted (the one route); only POST. ``line-connector
webhook-send`` posts a signed test event to it (``send_test_event``).
"""
import signal
import sys
import threading

from .serverbase import HardenedHandler, HardenedServer, HttpError, url_host

ROUTE = "local"


class _WebhookHandler(HardenedHandler):
    server_version = "line-connector-webhook"

    def handle_request(self):
        if self.command != "POST":
            raise HttpError(405, "only POST is accepted")
        body = self.read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, answer = self.server.ingress.handle(ROUTE, headers, body)
        if status >= 400:  # the receiver's answers keep their {"message"} shape
            answer = {"message": answer.get("error", "error")}
        self.send_json(status, answer)


class WebhookServer(HardenedServer):
    server_name_for_logs = "line-connector-webhook"

    def __init__(self, address, secret, out=None, store=None, **options):
        from .service.webhooks import Ingress, Route
        from .sinks import StreamSink

        self.out = out if out is not None else sys.stdout
        super().__init__(address, _WebhookHandler, **options)
        if store is None:  # this run's memory only (see the module's docstring)
            from .state import MemoryStore

            store = MemoryStore()
        self.ingress = Ingress.for_routes([Route(ROUTE, secret, [StreamSink(self.out)])], store=store,
                                          log=self.log, allow_unshared_state=True)

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


def test_event_body(text="Hello from line-connector", user_id="U" + "0" * 31 + "2"):
    """A LINE-shaped webhook body with one text message event: what LINE
    sends when a user writes to the bot (fresh ids, so each call is a new
    event). Field names as in LINE's Messaging API reference, "Webhook
    Event Objects": https://developers.line.biz/en/reference/messaging-api/#message-event"""
    import json
    import time
    import uuid

    now = int(time.time() * 1000)
    event = {"type": "message", "mode": "active", "timestamp": now,
             "source": {"type": "user", "userId": user_id},
             "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
             "deliveryContext": {"isRedelivery": False},
             "replyToken": uuid.uuid4().hex,
             "message": {"id": str(now), "type": "text", "quoteToken": uuid.uuid4().hex, "text": text}}
    return json.dumps({"destination": "U" + "0" * 31 + "1", "events": [event]}, ensure_ascii=False,
                      separators=(",", ":"))


def send_test_event(url, secret, body=None, timeout=10.0):
    """POST ``body`` (default: ``test_event_body()``) to ``url`` signed with
    ``secret`` as LINE signs (x-line-signature: base64 HMAC-SHA256 of the
    body). Returns (status, response text); raises OSError (requests'
    errors are OSErrors) when nothing answered."""
    import requests

    from .actions.line.webhook import signature

    body = test_event_body() if body is None else body
    data = body.encode("utf-8")
    response = requests.post(url, data=data, timeout=timeout, allow_redirects=False,
                             headers={"Content-Type": "application/json",
                                      "x-line-signature": signature(data, secret)})
    return response.status_code, response.text[:64 * 1024]
