"""The sandbox routes LINE's paths as LINE does (SPEC 14; issue 24).

The route table is derived from LINE's official OpenAPI files
(tests/fixtures/line-openapi, from github.com/line/line-openapi), so every
(method, path) LINE documents is served, never 404/405/501; any other method
on one of those paths is LINE's 405 with an ``Allow`` header naming the
methods the path has (RFC 9110 section 15.5.6: a 405 "MUST generate an Allow
header field"); an unknown path is 404. A literal path segment beats a
``{id}`` template: ``/v2/bot/richmenu/batch`` is not a rich menu ID.
"""
import http.client

import pytest

from line_connector.sandbox import Sandbox
from line_routes import HTTP_METHODS, concrete, routes

ROUTES = routes()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


def call(sandbox, method, path, body=None):
    conn = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def test_the_table_is_lines_100_operations_on_their_paths():
    assert sum(len(methods) for methods in ROUTES.values()) == 100
    assert ROUTES["/v2/bot/richmenu/{richMenuId}"] == {"GET", "DELETE"}


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_every_documented_method_is_served_and_every_other_is_405_with_allow(sandbox, path):
    served = ROUTES[path]
    url = concrete(path)
    for method in served:
        status, _, _ = call(sandbox, method, url, b"{}" if method in ("POST", "PUT") else None)
        assert status not in (404, 405, 501), (method, path, status)
    for method in sorted(set(HTTP_METHODS) - served):
        status, headers, data = call(sandbox, method, url)
        assert status == 405, (method, path, status)
        assert set(headers["allow"].split(", ")) == served, (method, path, headers.get("allow"))
        assert "x-line-request-id" in headers
        if method == "HEAD":
            assert data == b""


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "PROPFIND", "FOO"])
def test_an_unknown_path_is_404_never_501(sandbox, method):
    status, headers, data = call(sandbox, method, "/v2/bot/no/such/thing")
    assert status == 404
    assert data == b"" if method == "HEAD" else b"Not found" in data


def test_an_unknown_method_on_a_known_path_is_405_never_501(sandbox):
    status, headers, _ = call(sandbox, "PROPFIND", "/v2/bot/info")
    assert status == 405 and headers["allow"] == "GET"


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/v2/bot/richmenu/batch", "POST"),
    ("GET", "/v2/bot/richmenu/alias", "POST"),
    ("DELETE", "/v2/bot/richmenu/validate", "POST"),
    ("GET", "/v2/bot/richmenu/bulk/link", "POST"),
])
def test_a_literal_segment_beats_an_id_template(sandbox, method, path, allow):
    # /v2/bot/richmenu/{richMenuId} has GET and DELETE: were it picked, these would not be 405
    assert path in ROUTES and ROUTES[path] == {allow}
    status, headers, _ = call(sandbox, method, path)
    assert (status, headers.get("allow")) == (405, allow)


def test_a_head_answer_has_no_body_but_a_length(sandbox):
    status, headers, data = call(sandbox, "HEAD", "/v2/bot/info")
    assert status == 405 and data == b"" and int(headers["content-length"]) > 0
