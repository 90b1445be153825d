"""Emulation of the LINE Messaging API endpoints.

Checks what LINE checks (bearer token, retry key, body shape), answers with
LINE's shapes (``X-Line-Request-Id``, ``sentMessages``, the error object
``{"message", "details": [{"message", "property"}]}``) and keeps the state a
caller can observe: deliveries per recipient and retry key, quota and
consumption, per-day delivery counts.

Body checks here are written independently of the pack's JSON Schemas, so a
request the client should have refused is caught by the other side too.
"""
import datetime
import secrets
import threading
import time
import uuid
from collections import Counter

from .server import Reply

KST = datetime.timezone(datetime.timedelta(hours=9))  # LINE's delivery dates are UTC+9
MESSAGE_TYPES = {"text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap",
                 "template", "flex", "coupon"}
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def error(status, message, details=None, headers=None):
    body = {"message": message}
    if details:
        body["details"] = [{"message": m, "property": p} for p, m in details]
    return Reply(status, body, headers or {})


class LineState:
    def __init__(self, channel_token, client_id, client_secret, quota=10000, token_lifetime=900, friends=1000):
        self.lock = threading.RLock()
        self.channel_tokens = {channel_token}
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = token_lifetime
        self.issued = {}                # oauth token -> expiry (epoch seconds)
        self.token_requests = 0
        self.retry_keys = {}            # key -> accepted request id
        self.deliveries = []            # dicts: kind, to, messages, retry_key, request_id
        self.per_recipient = Counter()  # recipient -> messages delivered
        self.per_retry_key = Counter()  # retry key -> times processed (must stay 1)
        self.quota = quota
        self.consumption = 0
        self.daily = Counter()          # (kind, yyyymmdd) -> messages
        self.friends = friends          # how many users a broadcast or narrowcast reaches
        self.reply_tokens_used = set()  # reply tokens work once
        self.narrowcasts = {}           # request id -> {"target": n, "polls": n, "accepted": iso time}

    def valid_token(self, token):
        with self.lock:
            if token in self.channel_tokens:
                return True
            expiry = self.issued.get(token)
            return expiry is not None and expiry > time.time()


class LineEmulator:
    def __init__(self, state):
        self.state = state

    def routes(self):
        return {
            ("POST", "/oauth2/v3/token"): self.oauth_token,
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
        }

    # ---------------------------------------------------------- plumbing
    def authed(self, handler):
        def wrapped(req):
            auth = req.header("authorization", "")
            if not auth.startswith("Bearer ") or not self.state.valid_token(auth[7:]):
                return error(401, "Authentication failed. Confirm that the access token in the "
                                  "authorization header is valid.")
            reply = handler(req)
            reply.headers.setdefault("X-Line-Request-Id", str(uuid.uuid4()))
            return reply
        return wrapped

    @staticmethod
    def parse(req):
        try:
            body = req.json()
        except ValueError:
            return None, error(400, "The request body could not be parsed as JSON")
        if not isinstance(body, dict):
            return None, error(400, "The request body must be a JSON object")
        return body, None

    @staticmethod
    def check_messages(body, details):
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            details.append(("messages", "must be specified"))
        elif len(messages) > 5:
            details.append(("messages", "Size must be between 1 and 5"))
        else:
            for i, m in enumerate(messages):
                if not isinstance(m, dict) or m.get("type") not in MESSAGE_TYPES:
                    details.append(("messages[%d].type" % i, "Invalid message type"))
                elif m["type"] == "text" and not (isinstance(m.get("text"), str) and m["text"]):
                    details.append(("messages[%d].text" % i, "must be specified"))
                elif m["type"] == "text" and len(m["text"].encode("utf-16-le")) // 2 > 5000:
                    details.append(("messages[%d].text" % i, "Length must be between 0 and 5000"))

    def check_retry_key(self, req):
        """None to proceed, or the reply: 400 for a malformed key, 409 for a repeat."""
        import re

        key = req.header("x-line-retry-key")
        if key is None:
            return None
        if not re.match(UUID_RE, key):
            return error(400, "The retry key must be a UUID")
        with self.state.lock:
            accepted = self.state.retry_keys.get(key)
        if accepted:
            return error(409, "The retry key is already accepted",
                         headers={"x-line-accepted-request-id": accepted})
        return None

    def deliver(self, kind, recipients, messages, retry_key):
        """Record an accepted send atomically; returns (request id, reply or None on a race)."""
        request_id = str(uuid.uuid4())
        today = datetime.datetime.now(KST).strftime("%Y%m%d")
        with self.state.lock:
            if retry_key is not None:
                if retry_key in self.state.retry_keys:  # a concurrent duplicate won the race
                    return None, error(409, "The retry key is already accepted",
                                       headers={"x-line-accepted-request-id": self.state.retry_keys[retry_key]})
                self.state.retry_keys[retry_key] = request_id
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
            self.state.issued[token] = time.time() + self.state.token_lifetime
        return Reply(200, {"token_type": "Bearer", "access_token": token,
                           "expires_in": self.state.token_lifetime})

    def bot_info(self, req):
        return Reply(200, {"userId": "U" + "0" * 31 + "1", "basicId": "@sandbox", "displayName": "Sandbox Bot",
                           "chatMode": "bot", "markAsReadMode": "auto"})

    def push(self, req):
        def recipients(body, details):
            to = body.get("to")
            if not isinstance(to, str) or not to:
                details.append(("to", "must be specified"))
                return []
            if to[0] not in "UCR" or len(to) != 33:
                details.append(("to", "The property, to, in the request body is invalid"))
            return [to]
        return self._send(req, "push", recipients)[0]

    def _send(self, req, kind, recipients_of, with_key=True):
        """What every send shares: retry key, body checks, delivery.
        Returns (reply, request id of the delivery or None)."""
        repeat = self.check_retry_key(req) if with_key else None
        if repeat:
            return repeat, None
        if not with_key and req.header("x-line-retry-key") is not None:
            return error(400, "The retry key cannot be used with this endpoint"), None
        body, bad = self.parse(req)
        if bad:
            return bad, None
        details = []
        recipients = recipients_of(body, details)
        self.check_messages(body, details)
        if details:
            return error(400, "The request body has %d error(s)" % len(details), details), None
        request_id, race = self.deliver(kind, recipients, body["messages"],
                                        req.header("x-line-retry-key") if with_key else None)
        if race:
            return race, None
        headers = {"X-Line-Request-Id": request_id}
        if kind == "narrowcast":
            return Reply(202, {}, headers), request_id
        if kind in ("push", "reply"):
            sent = [{"id": str(uuid.uuid4().int)[:18], "quoteToken": secrets.token_urlsafe(24)}
                    for _ in body["messages"]]
            return Reply(200, {"sentMessages": sent}, headers), request_id
        return Reply(200, {}, headers), request_id

    def reply(self, req):
        def recipients(body, details):
            token = body.get("replyToken")
            if not isinstance(token, str) or not token:
                details.append(("replyToken", "must be specified"))
                return []
            with self.state.lock:
                if token in self.state.reply_tokens_used:
                    details.append(("replyToken", "Invalid reply token"))
                    return []
                self.state.reply_tokens_used.add(token)
            return ["reply:" + token]
        return self._send(req, "reply", recipients, with_key=False)[0]

    def multicast(self, req):
        def recipients(body, details):
            to = body.get("to")
            if not isinstance(to, list) or not to:
                details.append(("to", "must be specified"))
                return []
            if len(to) > 500:
                details.append(("to", "Size must be between 1 and 500"))
            for i, user in enumerate(to):
                if not (isinstance(user, str) and user.startswith("U") and len(user) == 33):
                    details.append(("to[%d]" % i, "The property, to[%d], in the request body is invalid" % i))
            return to
        return self._send(req, "multicast", recipients)[0]

    def broadcast(self, req):
        everyone = ["broadcast:%d" % i for i in range(self.state.friends)]
        return self._send(req, "broadcast", lambda body, details: everyone)[0]

    def narrowcast(self, req):
        target = {}

        def recipients(body, details):
            limit = body.get("limit") or {}
            n = self.state.friends
            if isinstance(limit, dict) and isinstance(limit.get("max"), int):
                n = min(n, limit["max"])
            recipient = body.get("recipient")
            if recipient is not None and (not isinstance(recipient, dict) or "type" not in recipient):
                details.append(("recipient", "The property, recipient, in the request body is invalid"))
            target["n"] = n
            return ["narrowcast:%d" % i for i in range(n)]
        reply, request_id = self._send(req, "narrowcast", recipients)
        if request_id is None:
            return reply
        with self.state.lock:
            self.state.narrowcasts[request_id] = {
                "target": target["n"], "polls": 0,
                "accepted": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")}
        return reply

    def narrowcast_progress(self, req):
        request_id = req.arg("requestId")
        with self.state.lock:
            job = self.state.narrowcasts.get(request_id)
            if job is None:
                return error(404, "Not found")
            job["polls"] += 1
            polls = job["polls"]
        # each poll moves it on: waiting -> sending -> succeeded
        body = {"phase": ["waiting", "sending"][polls - 1] if polls <= 2 else "succeeded",
                "acceptedTime": job["accepted"]}
        if polls > 2:
            body.update(successCount=job["target"], failureCount=0, targetCount=job["target"],
                        completedTime=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"))
        return Reply(200, body)

    def validate(self, req):
        if req.header("x-line-retry-key") is not None:
            return error(400, "The retry key cannot be used with this endpoint")
        body, bad = self.parse(req)
        if bad:
            return bad
        details = []
        self.check_messages(body, details)
        if details:
            return error(400, "The request body has %d error(s)" % len(details), details)
        return Reply(200, {})

    def quota(self, req):
        return Reply(200, {"type": "limited", "value": self.state.quota})

    def consumption(self, req):
        with self.state.lock:
            return Reply(200, {"totalUsage": self.state.consumption})

    def delivery_count(self, kind):
        def handler(req):
            import re

            date = req.arg("date", "")
            if not re.fullmatch(r"\d{8}", date):
                return error(400, "The value for the 'date' parameter is invalid")
            with self.state.lock:
                return Reply(200, {"status": "ready", "success": self.state.daily[(kind, date)]})
        return handler

    def loading(self, req):
        body, bad = self.parse(req)
        if bad:
            return bad
        chat_id = body.get("chatId")
        seconds = body.get("loadingSeconds", 20)
        details = []
        if not (isinstance(chat_id, str) and chat_id.startswith("U") and len(chat_id) == 33):
            details.append(("chatId", "The property, chatId, in the request body is invalid"))
        if not isinstance(seconds, int) or seconds < 5 or seconds > 60 or seconds % 5:
            details.append(("loadingSeconds", "The property, loadingSeconds, in the request body is invalid"))
        if details:
            return error(400, "The request body has %d error(s)" % len(details), details)
        return Reply(202, {})
