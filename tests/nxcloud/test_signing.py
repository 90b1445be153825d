"""NXCloud signing: the published vector, non-ASCII bodies, and the rule
that the bytes signed are the bytes sent."""
import hashlib
import json

from line_connector.actions.nxcloud.signing import NxSigner, sign
from line_connector.http import Request, json_bytes


def test_published_vector():
    body = '{"name":"牛小信","id":10001}'.encode("utf-8")
    assert sign("fme2na3kdi3ki", "abciiiko2k3", "1", "send", "1655710885431", body) \
        == "87c3560d3331ae23f1021e2025722354"


def test_non_ascii_body_is_signed_as_utf8_bytes_not_escapes():
    obj = {"content": "สวัสดีครับ 你好 👋", "tenant_id": 1}
    body = json_bytes(obj)
    assert "สวัสดี".encode("utf-8") in body and b"\\u" not in body
    expected = hashlib.md5(("accessKey=ak&action=mt&bizType=7&ts=1&body=" + body.decode("utf-8")
                            + "&accessSecret=sec").encode("utf-8")).hexdigest()
    assert sign("ak", "sec", "7", "mt", "1", body) == expected
    escaped = json.dumps(obj).encode("ascii")  # what a re-serializing library might send
    assert sign("ak", "sec", "7", "mt", "1", escaped) != expected


def test_signer_signs_the_request_bytes_with_a_fresh_ts(monkeypatch):
    signer = NxSigner("ak", "the-access-secret", "8", "mt")
    monkeypatch.setattr(NxSigner, "clock", staticmethod(lambda: 1700000000.123))
    request = Request("POST", "https://x/v1/message/mt", body=json_bytes({"a": "é"}))
    headers = signer.headers(None, request)
    assert headers["ts"] == "1700000000123" and headers["bizType"] == "8" and headers["action"] == "mt"
    assert headers["sign"] == sign("ak", "the-access-secret", "8", "mt", "1700000000123", request.body)
    masked = signer.masked_headers(request)
    assert masked["sign"] == "***" and "the-access-secret" not in repr(signer) + repr(masked)
