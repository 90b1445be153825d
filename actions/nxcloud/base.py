"""NxAction: what the three NXCloud sends share.

NXCloud answers HTTP 200 with ``{"code", "message", "data", "traceId"}``;
only ``code == 0`` is success. NXCloud has no idempotency key, so a send is
retried only when the connection was never made: after a timeout or a
dropped connection the outcome is *unknown*, reported as such, never
guessed and never resent (a resend could deliver twice).
"""
from line_connector.action import Action
from line_connector.http import UNSENT_ONLY, Request, json_bytes

from .signing import NxSigner

CODES = {
    -1: "failure (contact NXCloud support)",
    1000: "authentication failed", 1001: "authentication failed", 1002: "authentication failed",
    1003: "authentication failed: the signature does not match (check access_secret and clock)",
    1004: "authentication failed", 1005: "authentication failed",
    1100: "customer does not exist or is unavailable",
    1102: "insufficient balance",
    9000: "request parameter error",
    9001: "system business error (contact NXCloud support)",
    9002: "phone number error",
    9003: "customer app does not exist or is unavailable",
    9004: "customer app has no quotation",
    9005: "customer app routes are missing (contact NXCloud support)",
    9010: "rate limit exceeded",
    9011: "customer app quotation currency error",
    9999: "unknown error (contact NXCloud support)",
    14001: "channel is not opened",
    14002: "message type is not supported",
    14003: "send error",
}


def code_reason(code):
    if code in CODES:
        return CODES[code]
    if isinstance(code, int) and 1000 <= code <= 1009:
        return "authentication failed"
    return "error"


class NxAction(Action):
    url_field = "url"
    path = ""
    biz_type = "7"
    nx_action = "mt"
    method = "POST"
    #: a resend may deliver twice: NXCloud has no retry key (MCP idempotentHint)
    idempotent = False

    def signer(self):
        return NxSigner(self.asset["access_key"], self.asset["access_secret"], self.biz_type, self.nx_action)

    def nx_request(self, body, extra=None):
        return Request("POST", self.url(self.path, self.url_field), body=json_bytes(body),
                       headers={"Content-Type": "application/json"}, retry=UNSENT_ONLY,
                       auth=self.signer(), extra=dict(extra or {}))

    def build(self, inputs):
        return [self.nx_request(dict(inputs))]

    def judge(self, request, result):
        status, body = result["status_code"], result["json_body"]
        if status == 0:
            if result.get("delivery") == "unknown":
                result["note"] = ("outcome unknown: the request may have reached NXCloud and was not resent, "
                                  "because NXCloud cannot recognise a resend; check delivery before sending again")
            return False
        if status >= 400 or not isinstance(body, dict):
            result["note"] = "NXCloud answered HTTP %d without a result code" % status if status >= 400 \
                else "NXCloud's answer is not a JSON object"
            return False
        code = body.get("code")
        if code == 0:
            return True
        result["vendor_code"] = code
        result["note"] = "NXCloud code %s: %s%s" % (code, code_reason(code),
                                                   (" (%s)" % body["message"]) if body.get("message") else "")
        return False
