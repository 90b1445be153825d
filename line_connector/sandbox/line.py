"""Emulation of the LINE Messaging API endpoints.

Checks what LINE checks (bearer token, retry key, body), answers with LINE's
shapes and texts, and keeps the state a caller can observe: deliveries per
recipient and retry key, quota and consumption, per-day delivery counts.

One set of rules, two users: every message-carrying body (push, reply,
multicast, broadcast, narrowcast and the five ``validate`` endpoints) is
checked with the very JSON Schemas the pack validates its inputs with
(``schemas/line/*.input.json`` through ``line_connector.validation``), plus
the few request rules LINE has that the pack's inputs do not (a multicast
carries at most 500 user IDs; the pack's own fields such as ``retry_key`` are
not LINE fields). So a body any client sends (the pack, the official SDK,
curl) is refused here exactly when the pack would refuse it, with LINE's 400:
``{"message": "The request body has N error(s)", "details": [{"message",
"property"}]}``, ``property`` naming the field (``messages[0].text``).

What a caller sees is LINE's, point by point (developers.line.biz/en/reference/messaging-api/):

* ``X-Line-Request-Id`` on every response, 401 and 404 included;
* push/reply answer ``{"sentMessages": [{"id", "quoteToken"}]}``, with a
  ``quoteToken`` only for the message types that can be quoted (text,
  textV2, sticker, image, video, template, flex; "Get quote tokens");
* a repeated ``X-Line-Retry-Key`` answers 409 with
  ``x-line-accepted-request-id`` and, for a push, the ``sentMessages`` of the
  accepted request ("Retrying a failed API request");
* a used reply token answers 400 ``{"message": "Invalid reply token"}``;
* narrowcast progress moves waiting -> sending -> succeeded, one step per
  poll, and once succeeded its times never change;
* delivery counts are per day in UTC+9: today and future dates are
  ``{"status": "unready"}``, dates before 2018-03-31 ``out_of_service``,
  past dates ``ready`` with the count.

Demo data: a fresh sandbox already knows a narrowcast that succeeded, with
request ID ``DEMO_NARROWCAST_ID`` (``d5a3c1e2-0000-4000-8000-000000000001``),
so ``line_get_narrowcast_progress`` works on it before anything is sent.
"""
import datetime
import re
import secrets
import threading
import time
import uuid
from collections import Counter

from ..validation import errors_to_details, iter_errors
from .server import Reply

KST = datetime.timezone(datetime.timedelta(hours=9))  # LINE's delivery dates are UTC+9
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

#: message types LINE returns a quoteToken for in sentMessages (Get quote tokens)
QUOTABLE = frozenset({"text", "textV2", "sticker", "image", "video", "template", "flex"})

#: the pack's input schema each endpoint's body is judged by
BODY_SCHEMAS = {
    "push": "line/send_push.input.json",
    "reply": "line/send_reply.input.json",
    "multicast": "line/send_multicast.input.json",
    "broadcast": "line/send_broadcast.input.json",
    "narrowcast": "line/send_narrowcast.input.json",
    "validate": "line/validate.input.json",
    "loading": "line/loading_animation.input.json",
}
#: fields of the pack's inputs that are not LINE request fields (the pack sends
#: them as headers or uses them itself), so LINE does not know them
PACK_ONLY_FIELDS = ("retry_key", "max_workers")
MULTICAST_MAX = 500           # "Send multicast message": to, max 500 user IDs
FIRST_COUNTED_DAY = "20180331"  # NumberOfMessagesResponse: out_of_service before this date

DEMO_NARROWCAST_ID = "d5a3c1e2-0000-4000-8000-000000000001"
DEMO_NARROWCAST = {"target": 1000, "polls": 3, "accepted": "2026-01-05T09:00:00.000+09:00",
                   "completed": "2026-01-05T09:00:42.000+09:00"}

AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
RETRY_KEY_ACCEPTED = "The retry key is already accepted"
#: how long LINE remembers an accepted retry key
RETRY_KEY_SECONDS = 24 * 3600


#: modules of this package emulating more LINE endpoints; each has
#: ``install(state)`` (its state and demo data on the LineState) and
#: ``routes(emulator)`` -> {(METHOD, "/v2/bot/.../{name}"): handler}
EXTENSIONS = ("line_users", "line_richmenu", "line_audience", "line_tokens", "line_channel", "line_more")


def extensions():
    import importlib

    return [importlib.import_module("." + name, __package__) for name in EXTENSIONS]


def new_request_id():
    return str(uuid.uuid4())


def error(status, message, details=None, headers=None, **extra):
    body = {"message": message}
    if details:
        body["details"] = [{"message": m, "property": p} for p, m in details]
    body.update(extra)
    return Reply(status, body, dict(headers or {}))


def body_error(details):
    """LINE's 400 for a body that breaks rules: one detail per broken rule."""
    return error(400, "The request body has %d error(s)" % len(details), details)


def day_arg(req, name):
    """(the query parameter ``name``, None) when it is a real yyyyMMdd day in
    ASCII digits, else (None, LINE's 400 naming it): "00000000" and fullwidth
    digits are refused, as LINE refuses them, never a crash."""
    value = req.arg(name, "")
    try:
        valid = bool(re.fullmatch(r"[0-9]{8}", value)) and bool(datetime.datetime.strptime(value, "%Y%m%d"))
    except ValueError:
        valid = False
    if not valid:
        return None, body_error([(name, "The value for the '%s' parameter is invalid" % name)])
    return value, None


def count_date(req):
    """The sent-count endpoints' ``date`` rule (``day_arg``)."""
    return day_arg(req, "date")


def schema_problems(schema, body):
    """(path, message) for each rule of the pack's schema ``schema`` that
    ``body`` breaks: the sandbox judges a request body with the rules the
    pack checks before sending (nested too deeply is one problem, not a crash)."""
    try:
        found = errors_to_details(iter_errors(schema, body), "")
    except RecursionError:
        found = [{"path": "", "message": "The request body is nested too deeply"}]
    return [(d["path"], d["message"]) for d in found]


def checked_body(emulator, schema, req):
    """(body, None) when ``req``'s JSON body keeps ``schema``'s rules, else
    (None, LINE's 400)."""
    body, bad = emulator.parse(req)
    if bad:
        return None, bad
    details = schema_problems(schema, body)
    if details:
        return None, body_error(details)
    return body, None


def iso(moment):
    return moment.isoformat(timespec="milliseconds")


class LineState:
    def __init__(self, channel_token, client_id, client_secret, quota=10000, token_lifetime=900, friends=1000):
        self.lock = threading.RLock()
        self.channel_tokens = {channel_token}
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = token_lifetime
        self.clock = time.time          # replaceable: tests move the sandbox's day
        self.issued = {}                # oauth token -> expiry (epoch seconds)
        self.token_requests = 0
        self.retry_keys = {}            # key -> (accepted request id, accepted sentMessages or None)
        self.retry_key_times = {}       # key -> when it was accepted (LINE remembers a key for 24 h)
        self.deliveries = []            # dicts: kind, to, messages, retry_key, request_id
        self.per_recipient = Counter()  # recipient -> messages delivered
        self.per_retry_key = Counter()  # retry key -> times processed (must stay 1)
        self.quota = quota
        self.consumption = 0
        self.daily = Counter()          # (kind, yyyymmdd in UTC+9) -> messages
        self.friends = friends          # how many users a broadcast or narrowcast reaches
        self.reply_tokens_used = set()  # reply tokens work once
        # request id -> {"target", "polls", "accepted", "completed"}; seeded with the demo
        self.narrowcasts = {DEMO_NARROWCAST_ID: dict(DEMO_NARROWCAST)}
        for module in extensions():
            module.install(self)

    def accepted_key(self, key):
        """(request id, sentMessages) of a retry key LINE still remembers:
        accepted within the last 24 h ("Retrying a failed API request":
        "the retry key is valid for 24 hours"); after that it is a new key."""
        accepted = self.retry_keys.get(key)
        if accepted is not None and self.clock() - self.retry_key_times.get(key, 0.0) >= RETRY_KEY_SECONDS:
            return None
        return accepted

    def valid_token(self, token):
        with self.lock:
            if token in self.channel_tokens:
                return True
            expiry = self.issued.get(token)
            return expiry is not None and expiry > self.clock()

    def now(self):
        return datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)

    def today(self):
        """Today's date in UTC+9 as yyyyMMdd: LINE's day for delivery counts."""
        return self.now().astimezone(KST).strftime("%Y%m%d")


def _not_a_line_field(body):
    return [(name, "The property, %s, in the request body is invalid" % name)
            for name in PACK_ONLY_FIELDS if name in body]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate_path(body):
    """Path of the first key or string holding a lone surrogate, else None.

    JSON text may escape half of a UTF-16 pair ("\\ud800"); Python's json
    reads it into a str no UTF codec encodes strictly, so it is refused here
    with LINE's 400 instead of failing later as a 500. (A well-formed pair is
    joined into one code point by the parser, so any surrogate left is lone.)
    Iterative: the parser already bounded the depth, this adds no recursion."""
    stack = [("", body)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return path
        elif isinstance(node, dict):
            items = [(path + "." + key if path else key, key, value) for key, value in node.items()]
            for sub, key, _ in items:
                if _SURROGATE.search(key):  # named with the escape, so the reply itself encodes
                    return (path + "." if path else "") + key.encode("utf-8", "backslashreplace").decode("utf-8")
            stack.extend((sub, value) for sub, _, value in reversed(items))
        elif isinstance(node, list):
            stack.extend(("%s[%d]" % (path, i), value) for i, value in reversed(list(enumerate(node))))
    return None


def check_body(kind, body):
    """(property, message) pairs for every rule ``body`` breaks: the pack's
    schema for this endpoint, then LINE's own request rules."""
    details = _not_a_line_field(body)
    instance = {k: v for k, v in body.items() if k not in PACK_ONLY_FIELDS}
    try:
        found = errors_to_details(iter_errors(BODY_SCHEMAS[kind], instance), "")
    except RecursionError:  # nested deeper than any message LINE accepts: refused, not a crash
        found = [{"path": "messages", "message": "The request body is nested too deeply"}]
    details += [(d["path"], d["message"]) for d in found]
    if kind == "multicast" and isinstance(body.get("to"), list) and len(body["to"]) > MULTICAST_MAX:
        details.append(("to", "Size must be between 1 and %d" % MULTICAST_MAX))
    return details


class LineEmulator:
    def __init__(self, state):
        self.state = state

    def routes(self):
        return {
            ("POST", "/oauth2/v3/token"): self.with_request_id(self.oauth_token),
            ("GET", "/v2/bot/info"): self.authed(self.bot_info),
            ("POST", "/v2/bot/message/push"): self.authed(self.push),
            ("POST", "/v2/bot/message/reply"): self.authed(self.reply),
            ("POST", "/v2/bot/message/multicast"): self.authed(self.multicast),
            ("POST", "/v2/bot/message/broadcast"): self.authed(self.broadcast),
            ("POST", "/v2/bot/message/narrowcast"): self.authed(self.narrowcast),
            ("GET", "/v2/bot/message/quota"): self.authed(self.quota),
            ("GET", "/v2/bot/message/quota/consumption"): self.authed(self.consumption),
            ("GET", "/v2/bot/message/progress/narrowcast"): self.authed(self.narrowcast_progress),
            ("POST", "/v2/bot/chat/loading/start"): self.authed(self.loading),
            **{("POST", "/v2/bot/message/validate/" + kind): self.authed(self.validate)
               for kind in ("push", "reply", "multicast", "narrowcast", "broadcast")},
            **{("GET", "/v2/bot/message/delivery/" + kind): self.authed(self.delivery_count(kind))
               for kind in ("push", "reply", "multicast", "broadcast")},
            **{route: handler for module in extensions() for route, handler in module.routes(self).items()},
        }

    # ---------------------------------------------------------- plumbing
    @staticmethod
    def with_request_id(handler):
        """Every LINE response carries X-Line-Request-Id, errors included."""
        def wrapped(req):
            reply = handler(req)
            reply.headers.setdefault("X-Line-Request-Id", new_request_id())
            return reply
        return wrapped

    @staticmethod
    def not_found(req):
        """LINE's answer to a path it does not serve (with its request ID)."""
        return error(404, "Not found", headers={"X-Line-Request-Id": new_request_id()})

    def authed(self, handler):
        def checked(req):
            auth = req.header("authorization", "")
            if not auth.startswith("Bearer ") or not self.state.valid_token(auth[7:]):
                return error(401, AUTH_FAILED)
            return handler(req)
        return self.with_request_id(checked)

    @staticmethod
    def parse(req):
        try:
            body = req.json()
        except ValueError as exc:
            where = " (line: %d, column: %d)" % (exc.lineno, exc.colno) if hasattr(exc, "lineno") else ""
            return None, error(400, "The request body could not be parsed as JSON" + where)
        except RecursionError:
            return None, error(400, "The request body could not be parsed as JSON (nested too deeply)")
        if not isinstance(body, dict):
            return None, body_error([("", "The request body must be a JSON object")])
        where = _lone_surrogate_path(body)
        if where is not None:
            return None, body_error([(where, "The property, %s, in the request body is invalid"
                                             " (a lone UTF-16 surrogate is not a character)" % (where or "body"))])
        return body, None

    def check_retry_key(self, req):
        """None to proceed, or the reply: 400 for a malformed key, 409 for a repeat."""
        key = req.header("x-line-retry-key")
        if key is None:
            return None
        if not UUID_RE.match(key):
            return error(400, "The retry key must be a UUID")
        with self.state.lock:
            accepted = self.state.accepted_key(key)
        return self.conflict(accepted) if accepted else None

    @staticmethod
    def conflict(accepted):
        """LINE's 409: the accepted request's ID, and for push its sentMessages."""
        request_id, sent = accepted
        extra = {"sentMessages": sent} if sent is not None else {}
        return error(409, RETRY_KEY_ACCEPTED, headers={"x-line-accepted-request-id": request_id}, **extra)

    @staticmethod
    def sent_messages(messages):
        out = []
        for m in messages:
            sent = {"id": str(secrets.randbelow(9 * 10 ** 17) + 10 ** 17)}
            if m.get("type") in QUOTABLE:
                sent["quoteToken"] = secrets.token_urlsafe(64)
            out.append(sent)
        return out

    def deliver(self, kind, recipients, messages, retry_key, sent):
        """Record an accepted send atomically; returns (request id, reply or None on a race)."""
        request_id = new_request_id()
        today = self.state.today()
        with self.state.lock:
            if retry_key is not None:
                if self.state.accepted_key(retry_key):  # a concurrent duplicate won the race
                    return None, self.conflict(self.state.retry_keys[retry_key])
                self.state.retry_keys[retry_key] = (request_id, sent)
                self.state.retry_key_times[retry_key] = self.state.clock()
                self.state.per_retry_key[retry_key] += 1
            for to in recipients:
                self.state.per_recipient[to] += len(messages)
            self.state.deliveries.append({"kind": kind, "to": list(recipients), "messages": len(messages),
                                          "retry_key": retry_key, "request_id": request_id})
            count = len(messages) * len(recipients)
            if kind != "reply":
                self.state.consumption += count
            self.state.daily[(kind, today)] += count
        return request_id, None

    # ---------------------------------------------------------- endpoints
    def oauth_token(self, req):
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        with self.state.lock:
            self.state.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.state.client_id or form.get("client_secret") != self.state.client_secret:
            return Reply(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        token = secrets.token_urlsafe(32)
        with self.state.lock:
            self.state.issued[token] = self.state.clock() + self.state.token_lifetime
        return Reply(200, {"token_type": "Bearer", "access_token": token,
                           "expires_in": self.state.token_lifetime})

    def bot_info(self, req):
        return Reply(200, {"userId": "U" + "0" * 31 + "1", "basicId": "@sandbox", "displayName": "Sandbox Bot",
                           "chatMode": "bot", "markAsReadMode": "auto"})

    def _send(self, req, kind, recipients_of=None, with_key=True):
        """What every send shares: retry key, body rules, delivery.
        Returns (reply, request id of the delivery or None)."""
        if not with_key and req.header("x-line-retry-key") is not None:
            return error(400, "The retry key cannot be used with this endpoint"), None
        repeat = self.check_retry_key(req) if with_key else None
        if repeat:
            return repeat, None
        body, bad = self.parse(req)
        if bad:
            return bad, None
        details = check_body(kind, body)
        if details:
            return body_error(details), None
        recipients = recipients_of(body)
        if isinstance(recipients, Reply):
            return recipients, None
        sent = self.sent_messages(body["messages"]) if kind in ("push", "reply") else None
        request_id, race = self.deliver(kind, recipients, body["messages"],
                                        req.header("x-line-retry-key") if with_key else None, sent)
        if race:
            return race, None
        headers = {"X-Line-Request-Id": request_id}
        if kind == "narrowcast":
            return Reply(202, {}, headers), request_id
        if sent is not None:
            return Reply(200, {"sentMessages": sent}, headers), request_id
        return Reply(200, {}, headers), request_id

    def push(self, req):
        return self._send(req, "push", lambda body: [body["to"]])[0]

    def reply(self, req):
        def recipients(body):
            token = body["replyToken"]
            with self.state.lock:
                if token in self.state.reply_tokens_used:
                    return error(400, "Invalid reply token")
                self.state.reply_tokens_used.add(token)
            return ["reply:" + token]
        return self._send(req, "reply", recipients, with_key=False)[0]

    def multicast(self, req):
        return self._send(req, "multicast", lambda body: list(body["to"]))[0]

    def broadcast(self, req):
        return self._send(req, "broadcast", lambda body: ["broadcast:%d" % i for i in range(self.state.friends)])[0]

    def narrowcast(self, req):
        target = {}

        def recipients(body):
            limit = body.get("limit") or {}
            target["n"] = min(self.state.friends, limit.get("max", self.state.friends))
            return ["narrowcast:%d" % i for i in range(target["n"])]
        reply, request_id = self._send(req, "narrowcast", recipients)
        if request_id is not None:
            with self.state.lock:
                self.state.narrowcasts[request_id] = {"target": target["n"], "polls": 0,
                                                      "accepted": iso(self.state.now()), "completed": None}
        return reply

    def narrowcast_progress(self, req):
        request_id = req.arg("requestId")
        if not request_id:
            return body_error([("requestId", "must be specified")])
        with self.state.lock:
            job = self.state.narrowcasts.get(request_id)
            if job is None:
                return error(404, "Not found")
            job["polls"] += 1
            # each poll moves it on: waiting -> sending -> succeeded; the
            # completion time is fixed once, when it first reads succeeded
            if job["polls"] > 2 and job["completed"] is None:
                job["completed"] = iso(self.state.now())
            polls, accepted, completed, target = job["polls"], job["accepted"], job["completed"], job["target"]
        body = {"phase": ["waiting", "sending"][polls - 1] if polls <= 2 else "succeeded", "acceptedTime": accepted}
        if polls > 2:
            body.update(successCount=target, failureCount=0, targetCount=target, completedTime=completed)
        return Reply(200, body)

    def validate(self, req):
        if req.header("x-line-retry-key") is not None:
            return error(400, "The retry key cannot be used with this endpoint")
        body, bad = self.parse(req)
        if bad:
            return bad
        details = check_body("validate", body)
        if details:
            return body_error(details)
        return Reply(200, {})

    def quota(self, req):
        return Reply(200, {"type": "limited", "value": self.state.quota})

    def consumption(self, req):
        with self.state.lock:
            return Reply(200, {"totalUsage": self.state.consumption})

    def delivery_count(self, kind):
        def handler(req):
            date, bad = count_date(req)
            if bad:
                return bad
            if date < FIRST_COUNTED_DAY:
                return Reply(200, {"status": "out_of_service"})
            if date >= self.state.today():  # counted about a day later
                return Reply(200, {"status": "unready"})
            with self.state.lock:
                return Reply(200, {"status": "ready", "success": self.state.daily[(kind, date)]})
        return handler

    def loading(self, req):
        body, bad = self.parse(req)
        if bad:
            return bad
        details = check_body("loading", body)
        if details:
            return body_error(details)
        return Reply(202, {})
