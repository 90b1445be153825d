"""SobotAction: what the Sobot LINE API actions share.

Success is ``ret_code == "000000"``; 900001/900002 mean the token is missing
or no longer valid (the engine refetches once and resends); 999994 is a
parameter error. Queries change nothing, so they are safe to retry.
"""
from functools import cached_property

from line_connector.action import Action
from line_connector.http import SAFE_RETRY, Request, json_bytes

from .token import SUCCESS, TOKEN_REJECTED, SobotToken

RET_CODES = {
    "900001": "the token is missing",
    "900002": "the token is no longer valid (Sobot issues a new one on every get_token)",
    "999994": "parameter error",
    "999999": "unknown system error",
}
MAX_PAGE_SIZE = 100


class SobotAction(Action):
    method = "POST"
    #: queries read and change nothing, so a resend is harmless (MCP hints)
    read_only = True
    idempotent = True
    path = ""
    #: inputs the pack adds (never sent to Sobot)
    local_inputs = ()

    @cached_property
    def auth(self):
        return SobotToken(self.asset["url"], self.asset["appid"], self.asset["app_key"], self.redactor)

    def sobot_request(self, body=None, params=None, extra=None):
        if self.method == "GET":
            return Request("GET", self.url(self.path), params=params, retry=SAFE_RETRY, auth=self.auth,
                           extra=dict(extra or {}))
        return Request("POST", self.url(self.path), body=json_bytes(body or {}), retry=SAFE_RETRY,
                       headers={"Content-Type": "application/json"}, auth=self.auth, extra=dict(extra or {}))

    def vendor_inputs(self, inputs):
        return {k: v for k, v in inputs.items() if k not in self.local_inputs}

    def judge(self, request, result):
        body = result["json_body"]
        if result["status_code"] != 200:
            return False
        if not isinstance(body, dict):
            result["note"] = "Sobot's answer is not a JSON object"
            return False
        code = body.get("ret_code")
        if code == SUCCESS:
            return True
        result["vendor_code"] = code
        result["note"] = "Sobot ret_code %s: %s%s" % (code, RET_CODES.get(code, "error"),
                                                      (" (%s)" % body["ret_msg"]) if body.get("ret_msg") else "")
        return False

    def auth_rejected(self, result):
        body = result.get("json_body")
        return isinstance(body, dict) and body.get("ret_code") in TOKEN_REJECTED
