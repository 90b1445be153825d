"""An embedded emulator of the LINE, NXCloud and Sobot endpoints on 127.0.0.1.

    with Sandbox() as sb:
        run_action("line_send_push", {}, inputs, sandbox=sb)
        assert sb.line.per_recipient[inputs["to"]] == 1

It needs nothing but the standard library and the pack. ``demo_assets()``
gives a working asset of each kind; ``asset_for`` points any asset at it.
"""
import re
import threading
from urllib.parse import unquote

from .line import DEMO_NARROWCAST_ID, LineEmulator, LineState, new_request_id
from .line_tokens import DEMO_KID, demo_private_jwk
from .nxcloud import NxEmulator, NxState
from .sobot import SobotEmulator, SobotState
from ..serverbase import MAX_CONNECTIONS
from .server import DEFAULT_KINDS, FAULT_KINDS, STATS_PATH, FaultPlan, Reply, SandboxServer

__all__ = ["Sandbox", "FaultPlan", "FAULT_KINDS", "DEFAULT_KINDS", "sign_webhook", "webhook_body"]

# Credentials the sandbox accepts. Not secrets: they only open this emulator.
CHANNEL_TOKEN = "sandbox-channel-access-token"
CLIENT_ID = "1650000000"
CLIENT_SECRET = "sandbox-client-secret"
CHANNEL_SECRET = "sandbox-channel-secret"
NX_ACCESS_KEY = "sandbox-nx-access-key"
NX_ACCESS_SECRET = "sandbox-nx-access-secret"
SOBOT_APPID = "sandbox-appid"
SOBOT_APP_KEY = "sandbox-sobot-app-key"

URL_FIELDS = ("url", "data_url", "super_message_url")


def sign_webhook(body, channel_secret=CHANNEL_SECRET):
    """The x-line-signature LINE would send with ``body`` (str or bytes)."""
    from ..actions.line.webhook import signature

    return signature(body, channel_secret)


def webhook_body(events, destination="U" + "0" * 31 + "1", channel_secret=CHANNEL_SECRET):
    """(body text, x-line-signature) of a webhook carrying ``events``: what
    a test posts to a receiver or feeds to line_parse_webhook."""
    import json

    body = json.dumps({"destination": destination, "events": list(events)}, ensure_ascii=False,
                      separators=(",", ":"))
    return body, sign_webhook(body, channel_secret)


DEFAULT_CREDENTIALS = {"token": CHANNEL_TOKEN, "client_secret": CLIENT_SECRET, "channel_secret": CHANNEL_SECRET,
                       "access_secret": NX_ACCESS_SECRET, "app_key": SOBOT_APP_KEY}


class Sandbox:
    """``credentials`` overrides the secrets it accepts (keys: token,
    client_secret, channel_secret, access_secret, app_key), e.g. to run
    with a canary secret. ``ssl_context`` serves HTTPS instead of HTTP.

    The server answers a bad request (a negative, invalid or oversized
    Content-Length, a body or headers that drip, a client that hangs up) with
    an HTTP error or a closed connection within 30 s, serves at most
    ``max_connections`` connections at once, and logs JSON lines only, to
    ``log_stream`` (stderr by default)."""

    def __init__(self, host="127.0.0.1", port=0, faults=None, credentials=None, ssl_context=None,
                 max_connections=MAX_CONNECTIONS, log_stream=None, rate_limits=None, operation_seconds=0.0):
        self.host = host
        #: LINE's rate limits enforced (True, or {endpoint: (limit, per seconds)}
        #: overrides), and LINE's per-audience concurrency limit, each audience
        #: upload taking ``operation_seconds``: see sandbox/ratelimits.py
        self.rate_limits = None
        if rate_limits:
            from .ratelimits import RateLimits

            self.rate_limits = RateLimits(rate_limits if isinstance(rate_limits, dict) else None,
                                          operation_seconds=operation_seconds)
        self.max_connections = max_connections
        self.log_stream = log_stream
        self.port = port
        self.faults = faults or FaultPlan()
        self.ssl_context = ssl_context
        self.credentials = dict(DEFAULT_CREDENTIALS, **(credentials or {}))
        creds = self.credentials
        self.line = LineState(creds["token"], CLIENT_ID, creds["client_secret"])
        self.line.operations = self.rate_limits  # the audience endpoints count their operations
        self._routes = {}
        self.nxcloud = NxState(NX_ACCESS_KEY, creds["access_secret"])
        self._routes.update(LineEmulator(self.line).routes())
        self.sobot = SobotState(SOBOT_APPID, creds["app_key"])
        self._routes.update(NxEmulator(self.nxcloud).routes())
        self._routes.update(SobotEmulator(self.sobot).routes())
        # "/v2/bot/profile/{userId}": one path segment per {name}, handed to
        # the handler as incoming.params; a path with more literal segments
        # beats a template (/v2/bot/richmenu/batch is not a {richMenuId})
        self._paths = {}  # path -> (regex, literal segments, {method: handler})
        for (method, path), handler in self._routes.items():
            self.add_route(method, path, handler)
        self._server = None
        self._thread = None
        self.requests = 0

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._server = SandboxServer((self.host, self.port), self, max_connections=self.max_connections,
                                     log_stream=self.log_stream)
        if self.ssl_context is not None:
            # the handshake happens in the connection's own thread, under the
            # header deadline (serverbase): in accept() a silent client would
            # block every other connection
            self._server.socket = self.ssl_context.wrap_socket(self._server.socket, server_side=True,
                                                               do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="line-connector-sandbox",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def log(self, event, **fields):
        """One JSON line on the sandbox's log stream."""
        if self._server is not None:
            self._server.log(event, **fields)

    def wait(self):
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.ssl_context else "http", self.host, self.port)

    # ------------------------------------------------------------ routing
    def dispatch(self, incoming):
        if incoming.path == STATS_PATH:
            return Reply(200, self.stats())
        with self.line.lock:
            self.requests += 1
        if self.rate_limits is not None and incoming.path.startswith("/v2/"):
            refused = self.rate_limits.check(incoming.method, incoming.path, incoming.header("authorization"))
            if refused is not None:  # LINE's answer past a rate limit: nothing processed
                return Reply(429, refused, {"X-Line-Request-Id": new_request_id()})
        route = self.route(incoming.path)
        if route is None or incoming.method not in route[1]:
            # LINE: 404 for a path it does not serve, 405 naming the methods a
            # known path has for any other method (HEAD and OPTIONS included)
            reply = Reply(404, {"message": "Not found"}) if route is None else \
                Reply(405, {"message": "Method not allowed"}, {"Allow": ", ".join(sorted(route[1]))})
            if incoming.path.startswith(("/v2/", "/oauth2/", "/bot/")):  # LINE's paths: LINE answers with a request ID
                reply.headers["X-Line-Request-Id"] = new_request_id()
            return reply
        incoming.params = route[0]
        return route[1][incoming.method](incoming)

    def add_route(self, method, path, handler):
        """Serve ``method path`` (``{name}`` segments allowed) with ``handler(incoming) -> Reply``."""
        regex = re.compile("^" + re.sub(r"\\\{([A-Za-z]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")
        literals = sum(1 for part in path.split("/") if part and "{" not in part)
        self._paths.setdefault(path, (regex, literals, {}))[2][method] = handler

    def route(self, path):
        """({name: segment}, {method: handler}) of the route serving ``path``
        (the one with the most literal segments), or None."""
        exact = self._paths.get(path) if "{" not in path else None
        if exact is not None:  # all literal: no template can beat it
            return {}, exact[2]
        best = None
        for regex, literals, methods in self._paths.values():
            found = regex.match(path)
            if found and (best is None or literals > best[0]):
                best = (literals, {k: unquote(v) for k, v in found.groupdict().items()}, methods)
        return None if best is None else best[1:]

    def stats(self):
        """What the sandbox counted (also served at GET /_sandbox/stats)."""
        with self.line.lock:
            line = {"deliveries": len(self.line.deliveries),
                    "messages_per_recipient_max": max(self.line.per_recipient.values(), default=0),
                    "retry_keys": len(self.line.per_retry_key),
                    "retry_keys_processed_twice": sum(1 for n in self.line.per_retry_key.values() if n > 1),
                    "consumption": self.line.consumption, "token_requests": self.line.token_requests,
                    "jwt_token_requests": self.line.jwt_token_requests,
                    "v21_tokens_issued": self.line.v21_tokens_issued}
        with self.nxcloud.lock:
            nx = {"deliveries": len(self.nxcloud.deliveries),
                  "recipients_delivered_twice": sum(1 for n in self.nxcloud.per_recipient.values() if n > 1),
                  "rejected": {str(k): v for k, v in self.nxcloud.rejected.items()}}
        with self.sobot.lock:
            sobot = {"token_requests": self.sobot.token_requests}
        out = {"requests": self.requests, "faults_injected": dict(self.faults.injected),
               "line": line, "nxcloud": nx, "sobot": sobot}
        if self.rate_limits is not None:
            out["rate_limits"] = self.rate_limits.stats()
            out["audience_concurrency"] = self.rate_limits.concurrency_stats()
        return out

    # ------------------------------------------------------------ assets
    def demo_assets(self, jwt=True):
        """A working asset of every kind, pointed at this sandbox.

        Demo data to go with them: a narrowcast that already succeeded, request
        ID ``DEMO_NARROWCAST_ID`` (d5a3c1e2-0000-4000-8000-000000000001), for
        line_get_narrowcast_progress on a fresh sandbox.

        ``line_channel_jwt`` carries the demo assertion signing key (made on
        first use; left out with ``jwt=False`` or without the ``[jwt]`` extra)."""
        c = self.credentials
        assets = self._demo_assets(c)
        private_jwk = demo_private_jwk() if jwt else None
        if private_jwk is not None:
            assets["line_channel_jwt"] = {"url": self.url, "data_url": self.url, "channel_id": CLIENT_ID,
                                          "kid": DEMO_KID, "private_key": private_jwk}
        return assets

    def _demo_assets(self, c):
        return {
            "line_channel_access_token": {"url": self.url, "data_url": self.url, "token": c["token"]},
            "line_oauth2_client_credentials": {"url": self.url, "data_url": self.url,
                                               "token_url": self.url + "/oauth2/v3/token",
                                               "client_id": CLIENT_ID, "client_secret": c["client_secret"]},
            "line_channel_secret": {"channel_secret": c["channel_secret"]},
            "nxcloud": {"url": self.url, "super_message_url": self.url,
                        "access_key": NX_ACCESS_KEY, "access_secret": c["access_secret"]},
            "sobot": {"url": self.url, "appid": SOBOT_APPID, "app_key": c["app_key"]},
        }

    def asset_for(self, accepted, given):
        """Point ``given`` at the sandbox; with no credentials given, use the
        demo asset of the first kind the action accepts."""
        # the demo key is made only when the demo asset itself is used
        demos = self.demo_assets(jwt=bool(accepted) and accepted[0] == "line_channel_jwt")
        if not isinstance(given, dict):
            return given
        creds = {k: v for k, v in given.items() if k not in URL_FIELDS + ("token_url", "http_proxy", "verify_ssl")}
        asset = dict(demos.get(accepted[0], {})) if not creds else dict(given)
        asset.pop("http_proxy", None)
        for name in accepted:
            for key, value in demos.get(name, {}).items():
                if key in URL_FIELDS or key == "token_url":
                    # url and data_url always: their defaults are LINE's real hosts
                    if key in asset or key in ("url", "data_url") or (key == "token_url" and "client_id" in asset):
                        asset[key] = value
        return asset
