"""NXCloud request signing (all three NX endpoints).

Headers ``accessKey``, ``ts`` (ms), ``bizType``, ``action``, ``sign`` where

    sign = md5_hex("accessKey=..&action=..&bizType=..&ts=.."   (sorted by name)
                   + "&body=" + <the exact JSON text sent>
                   + "&accessSecret=" + secret)

The body is serialized once by the action and these exact bytes are both
signed and sent: re-serializing (another key order, escaped non-ASCII)
would change the signature.
"""
import hashlib
import time

from line_connector.redaction import Secret


def sign(access_key, access_secret, biz_type, action, ts, body: bytes):
    """Lowercase hex md5 of the signing string; ``body`` is the raw bytes."""
    head = "&".join("%s=%s" % kv for kv in sorted(
        {"accessKey": access_key, "action": action, "bizType": biz_type, "ts": ts}.items()))
    data = (head + "&body=").encode("utf-8") + (body or b"") + ("&accessSecret=" + access_secret).encode("utf-8")
    return hashlib.md5(data).hexdigest()


class NxSigner:
    """Auth object for the HTTP client: signs each attempt with a fresh ts."""

    #: seconds since the epoch; a test may replace it to sign with a skewed clock
    clock = staticmethod(time.time)

    def __init__(self, access_key, access_secret, biz_type, action):
        self.access_key = access_key
        self._secret = Secret(access_secret)
        self.biz_type = biz_type
        self.action = action

    def __repr__(self):
        return "NxSigner(access_key=%r, access_secret=***, bizType=%r, action=%r)" % (
            self.access_key, self.biz_type, self.action)

    def _base(self, ts):
        return {"accessKey": self.access_key, "ts": ts, "bizType": self.biz_type, "action": self.action}

    def headers(self, client, request):
        ts = str(int(self.clock() * 1000))
        out = self._base(ts)
        out["sign"] = sign(self.access_key, str(self._secret), self.biz_type, self.action, ts, request.body)
        return out

    def masked_headers(self, request):
        out = self._base("<ms at send time>")
        out["sign"] = "***"
        return out

    def refresh(self):
        return False
