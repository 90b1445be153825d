"""Emulation of NXCloud's LINE, Viber and Super Message endpoints.

Checks what NXCloud checks, in its order: the signing headers (accessKey,
ts within 60 s, bizType/action), the ``sign`` over the *raw* body bytes
(code 1003 when it does not match), then the body's per-type required
fields (9000). Answers HTTP 200 with ``{"code", "message", "data",
"traceId"}`` like the vendor. NXCloud cannot recognise a resend, and neither
does this emulator: every accepted request is a delivery, so duplicates
show up in ``per_recipient``.

Codes 1000-1002 for a missing header, unknown access key and stale
timestamp are this emulator's choice within the vendor's 1000-100X
"authentication failed" range; 1003 (bad sign) and 9000 are the vendor's.
"""
import hashlib
import threading
import time
import uuid
from collections import Counter

from .server import Reply

LINE_TYPES = {1: ["content"], 3: ["filename", "originalContentUrl"],
              4: ["filename", "originalContentUrl", "previewImageUrl"],
              5: ["filename", "originalContentUrl", "duration"]}
VIBER_TYPES = {1: ["content"], 3: ["filename", "fileUrl"], 10: ["content", "filename", "fileUrl"],
               12: ["content", "viber_video_button_info"],
               11: ["content", "filename", "fileUrl", "viber_video_button_info"]}
SUPER_KINDS = ("textMessage", "mediaMessage", "choiceMessage", "cardMessage")


def answer(code, message="", data=None):
    body = {"code": code, "message": message, "traceId": uuid.uuid4().hex}
    if data is not None or code == 0:
        body["data"] = data
    return Reply(200, body)


class NxState:
    def __init__(self, access_key, access_secret, max_drift_ms=60000):
        self.lock = threading.RLock()
        self.access_key, self.access_secret = access_key, access_secret
        self.max_drift_ms = max_drift_ms
        self.deliveries = []                 # {"endpoint", "to", "type"}
        self.per_recipient = Counter()       # (endpoint, recipient) -> deliveries
        self.rejected = Counter()            # code -> count


class NxEmulator:
    def __init__(self, state):
        self.state = state

    def routes(self):
        return {
            ("POST", "/saas/line/send"): self.signed("7", self.line),
            ("POST", "/saas/viber/send"): self.signed("7", self.viber),
            ("POST", "/v1/message/mt"): self.signed("8", self.super_message),
        }

    def signed(self, biz_type, handler):
        def wrapped(req):
            reply = self.check_signature(req, biz_type) or self.check_body(req, handler)
            if reply.body.get("code"):
                with self.state.lock:
                    self.state.rejected[reply.body["code"]] += 1
            return reply
        return wrapped

    def check_signature(self, req, biz_type):
        h = {k: req.header(k) for k in ("accessKey", "ts", "bizType", "action", "sign")}
        if any(v is None for v in h.values()):
            return answer(1000, "Authentication failed: missing %s" % ", ".join(k for k, v in h.items() if v is None))
        if h["accessKey"] != self.state.access_key:
            return answer(1001, "Authentication failed: unknown accessKey")
        try:
            drift = abs(int(time.time() * 1000) - int(h["ts"]))
        except ValueError:
            return answer(1002, "Authentication failed: ts is not a millisecond timestamp")
        if drift > self.state.max_drift_ms:
            return answer(1002, "Authentication failed: ts is more than 60 seconds off")
        if h["bizType"] != biz_type or h["action"] != "mt":
            return answer(9000, "Request parameter error: bizType/action")
        head = "&".join("%s=%s" % (k, h[k]) for k in sorted(("accessKey", "action", "bizType", "ts")))
        expected = hashlib.md5((head + "&body=").encode("utf-8") + req.body
                               + ("&accessSecret=" + self.state.access_secret).encode("utf-8")).hexdigest()
        if h["sign"] != expected:
            return answer(1003, "Authentication failed: sign error")
        return None

    def check_body(self, req, handler):
        try:
            body = req.json()
        except ValueError:
            return answer(9000, "Request parameter error: body is not JSON")
        if not isinstance(body, dict) or not body.get("appkey"):
            return answer(9000, "Request parameter error: appkey")
        return handler(body)

    def _deliver(self, endpoint, recipients, kind):
        with self.state.lock:
            for to in recipients:
                self.state.per_recipient[(endpoint, to)] += 1
                self.state.deliveries.append({"endpoint": endpoint, "to": to, "type": kind})

    def _saas(self, body, endpoint, types):
        if not isinstance(body.get("tenant_id"), int) or not body.get("to"):
            return answer(9000, "Request parameter error: tenant_id/to")
        required = types.get(body.get("type"))
        if required is None:
            return answer(9000, "Request parameter error: type")
        missing = [f for f in required if body.get(f) in (None, "", {})]
        if missing:
            return answer(9000, "Request parameter error: %s" % ", ".join(missing))
        self._deliver(endpoint, [body["to"]], body["type"])
        return answer(0, "", {"message_id": uuid.uuid4().hex[:27]})

    def line(self, body):
        return self._saas(body, "line", LINE_TYPES)

    def viber(self, body):
        if not str(body.get("to", "")).isdigit():
            return answer(9002, "Phone number error")
        return self._saas(body, "viber", VIBER_TYPES)

    def super_message(self, body):
        phones, message = body.get("phones"), body.get("message")
        if not isinstance(phones, list) or not phones or len(phones) > 2000:
            return answer(9000, "Request parameter error: phones (1 to 2000)")
        if not all(isinstance(p, str) and p.isdigit() for p in phones):
            return answer(9002, "Phone number error")
        kinds = [k for k in SUPER_KINDS if isinstance(message, dict) and k in message]
        if len(kinds) != 1:
            return answer(9000, "Request parameter error: message needs exactly one of %s" % ", ".join(SUPER_KINDS))
        priority = body.get("priority") or ["SMS", "VIBER"]
        if "VIBER" not in priority and kinds[0] != "textMessage":
            return answer(14002, "Message is not supported")
        self._deliver("super", phones, kinds[0])
        status = {ch.lower(): {"code": 0, "message": "Success"} for ch in priority}
        return answer(0, "Success", {"requestId": uuid.uuid4().hex, "channelStatus": status})
