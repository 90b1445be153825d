"""Hostile inputs (issue 12 item 4, SPEC 7 "bad input is exit 2, never a
crash"): strict JSON on the command line, the same rules for the Python API's
values, vendor integer ranges, a nesting limit, lone surrogates and bad
encodings. Each ends in exit 2 / InputError naming the field, with nothing
sent."""
import json
import math
import re
import subprocess
import sys

import pytest
import responses

from helpers import run_cli
from line_connector import InputError, run_action
from line_connector.manifest import manifest
from line_connector.validation import MAX_DEPTH

USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
TOKEN = {"token": "tok-inputs-1234"}
PUSH = {"to": USER, "messages": [{"type": "text", "text": "hi"}]}
NX = {"access_key": "ak", "access_secret": "as-inputs-1234"}
SOBOT = {"appid": "app", "app_key": "key-inputs-1234"}


def refused(name, asset, inputs):
    """The InputError run_action raises; asserts nothing was sent."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add("GET", re.compile(r"https?://.*"), json={})
        rsps.add("POST", re.compile(r"https?://.*"), json={})
        with pytest.raises(InputError) as info:
            run_action(name, asset, inputs)
        assert len(rsps.calls) == 0, "an invalid input was sent"
    json.dumps(info.value.to_json(), ensure_ascii=False).encode("utf-8")  # printable as strict UTF-8 JSON
    return info.value


def paths(exc):
    return [d["path"] for d in exc.details]


def cli_bytes(*args, data):
    """Run the CLI with raw bytes on stdin (run_cli only takes text)."""
    proc = subprocess.run([sys.executable, "-m", "line_connector.cli", *args], input=data,
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def assert_exit_2(code, out, err, path):
    assert code == 2 and out == ""
    assert "Traceback" not in err
    error = json.loads(err)
    assert error["error"] and path in [d["path"] for d in error["details"]], error
    return error


# ------------------------------------------------------------ strict JSON (CLI)

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_cli_refuses_non_finite_numbers(literal):
    """RFC 8259 section 6: 'Numeric values that cannot be represented ... (such
    as Infinity and NaN) are not permitted'. Was: latitude NaN was sent as NaN."""
    text = ('{"asset": {"token": "tok-inputs-1234"}, "inputs": {"to": "%s", "messages": [{"type": "location", '
            '"title": "t", "address": "a", "latitude": %s, "longitude": 1}]}}' % (USER, literal))
    error = assert_exit_2(*run_cli("run", "line_send_push", "--dry-run", stdin=text), "stdin")
    assert "JSON" in error["details"][0]["message"]


def test_cli_refuses_non_utf8_stdin_and_files(tmp_path):
    """RFC 8259 section 8.1: JSON text exchanged between systems MUST be UTF-8.
    Was: a non-UTF-8 --asset file ended in 'internal error'."""
    good = json.dumps({"asset": TOKEN, "inputs": PUSH}).encode()
    bad = good.replace(b"hi", b"h\xff")
    assert_exit_2(*cli_bytes("run", "line_send_push", "--dry-run", data=bad), "stdin")
    latin1 = json.dumps(TOKEN).replace("tok", "t\u00e9k").encode("latin-1")
    (tmp_path / "asset.json").write_bytes(latin1)
    (tmp_path / "inputs.json").write_bytes(json.dumps(PUSH).encode("utf-16"))
    (tmp_path / "ok.json").write_bytes(json.dumps(PUSH).encode())
    assert_exit_2(*run_cli("run", "line_send_push", "--asset", str(tmp_path / "asset.json"),
                           "--inputs", str(tmp_path / "ok.json")), "asset")
    (tmp_path / "asset.json").write_bytes(json.dumps(TOKEN).encode())
    assert_exit_2(*run_cli("run", "line_send_push", "--asset", str(tmp_path / "asset.json"),
                           "--inputs", str(tmp_path / "inputs.json")), "inputs")


def test_cli_accepts_a_utf8_bom(tmp_path):
    """RFC 8259 section 8.1 lets a parser ignore a byte order mark; Windows
    editors write one."""
    (tmp_path / "asset.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(TOKEN).encode())
    (tmp_path / "inputs.json").write_bytes(json.dumps(PUSH, ensure_ascii=False).encode())
    code, out, err = run_cli("run", "line_send_push", "--dry-run", "--asset", str(tmp_path / "asset.json"),
                             "--inputs", str(tmp_path / "inputs.json"))
    assert code == 0, err


def test_cli_lone_surrogates_are_exit_2_naming_the_field():
    """A JSON escape may spell a lone surrogate ("\\ud800"), which is not
    Unicode text and cannot be sent as UTF-8. Was: a crash."""
    text = json.dumps({"asset": TOKEN, "inputs": {"to": USER, "messages": [{"type": "text", "text": "x"}]}})
    assert_exit_2(*run_cli("run", "line_send_push", stdin=text.replace('"x"', '"x\\ud800"')),
                  "inputs.messages[0].text")
    error = assert_exit_2(*run_cli("run", "line_send_push", stdin=text.replace('"type": "text"', '"\\udc00": 1, '
                                                                                   '"type": "text"')),
                          "inputs.messages[0].\\udc00")
    assert "surrogate" in json.dumps(error)
    assert_exit_2(*run_cli("run", "line_send_push", stdin='{"\\ud800": {}}'), "\\ud800")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200000])
def test_cli_deep_nesting_is_exit_2(depth):
    """Was: stdin nested deep ended in 'internal error: RecursionError'."""
    inner = "[" * depth + "]" * depth
    text = '{"asset": {"token": "tok-inputs-1234"}, "inputs": {"to": "%s", "messages": %s}}' % (USER, inner)
    code, out, err = run_cli("run", "line_send_push", stdin=text)
    assert code == 2 and out == "" and "Traceback" not in err
    error = json.loads(err)
    assert "nested too deep" in error["details"][0]["message"]
    assert error["details"][0]["path"] in ("stdin", ) or error["details"][0]["path"].startswith("inputs.messages")


def test_cli_integer_too_long_to_parse_is_exit_2():
    text = '{"asset": {"access_key": "ak", "access_secret": "s-1234"}, "inputs": {"tenant_id": %s}}' % ("9" * 5000)
    assert_exit_2(*run_cli("run", "nxcloud_send_line", stdin=text), "stdin")


def test_cli_no_asset_suggests_the_sandbox():
    for payload in ({"inputs": PUSH}, {"asset": {}, "inputs": PUSH}, ""):
        code, out, err = run_cli("run", "line_send_push", stdin=payload)
        assert code == 2
        error = json.loads(err)
        assert error["error"].startswith("no asset given") and "--sandbox" in error["error"]
        assert "asset.token" in [d["path"] for d in error["details"]]  # still says what is required


def test_no_asset_message_from_the_python_api():
    exc = refused("nxcloud_send_line", None, manifest().action("nxcloud_send_line").example)
    assert exc.message.startswith("no asset given") and "asset.access_key" in paths(exc)
    exc = refused("nxcloud_send_line", {"access_key": "ak"}, manifest().action("nxcloud_send_line").example)
    assert not exc.message.startswith("no asset given")  # a partial asset gets the plain field errors


def test_a_misspelt_credential_field_is_not_called_no_asset():
    """An asset with fields but no credential field (``channel_access_token``
    for ``token``) was given: the error says so and names what each kind of
    asset needs, instead of the untrue "no asset given"."""
    exc = refused("line_send_push", {"channel_access_token": "tok-123"}, PUSH)
    assert not exc.message.startswith("no asset given")
    assert "none of the fields a credential needs" in exc.message
    for need in ("line_channel_access_token needs token", "line_oauth2_client_credentials needs client_id, client_secret",
                 "line_channel_jwt needs channel_id, kid, private_key"):
        assert need in exc.message
    assert "asset.token" in paths(exc)
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": {"channel_access_token": "tok-123"}, "inputs": PUSH})
    assert code == 2 and out == "" and "tok-123" not in err
    assert "none of the fields a credential needs" in json.loads(err)["error"] and "--sandbox" in json.loads(err)["error"]


# ------------------------------------------------- the Python API's values

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_api_non_finite_floats_are_input_errors(bad):
    inputs = {"to": USER, "messages": [{"type": "location", "title": "t", "address": "a",
                                        "latitude": bad, "longitude": 1.0}]}
    exc = refused("line_send_push", TOKEN, inputs)
    assert paths(exc) == ["inputs.messages[0].latitude"]
    exc = refused("line_send_push", dict(TOKEN, verify_ssl=bad), PUSH)
    assert paths(exc) == ["asset.verify_ssl"]


def test_api_lone_surrogates_in_keys_and_values_are_input_errors():
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": [{"type": "text", "text": "a\udfffb"}]})
    assert paths(exc) == ["inputs.messages[0].text"]
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": [{"type": "text", "text": "x", "\ud83d": 1}]})
    assert paths(exc) == ["inputs.messages[0].\\ud83d"]
    exc = refused("line_send_push", {"token": "tok-\ud800-1234"}, PUSH)
    assert paths(exc) == ["asset.token"]


@pytest.mark.parametrize("value,kind", [((1, 2), "tuple"), ({"a"}, "set"), (b"bytes", "bytes"),
                                        (object(), "object")])
def test_api_non_json_types_are_input_errors(value, kind):
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": [{"type": "text", "text": value}]})
    assert paths(exc) == ["inputs.messages[0].text"] and kind in exc.details[0]["message"]


def test_api_non_string_keys_are_input_errors():
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": [{"type": "text", "text": "x", 1: "y"}]})
    assert paths(exc) == ["inputs.messages[0]"]


def _flex(levels):
    """A push whose flex bubble nests boxes until the inputs are exactly
    ``levels`` deep (a text's tap action adds the odd level)."""
    def build(boxes, action):
        leaf = {"type": "text", "text": "deepest"}
        if action:
            leaf["action"] = {"type": "message", "label": "tap", "text": "tap"}
        for _ in range(boxes):
            leaf = {"type": "box", "layout": "vertical", "contents": [leaf]}
        return {"to": USER, "messages": [{"type": "flex", "altText": "deep",
                                          "contents": {"type": "bubble", "body": leaf}}]}
    for boxes in range(levels):
        for action in (False, True):
            if _depth(build(boxes, action)) == levels:
                return build(boxes, action)
    raise AssertionError(levels)


def _depth(value):
    if isinstance(value, dict):
        return 1 + max([_depth(v) for v in value.values()] or [0])
    if isinstance(value, list):
        return 1 + max([_depth(v) for v in value] or [0])
    return 0


def test_nesting_limit_is_above_any_real_flex_message_and_below_a_crash():
    """A flex message with boxes nested to the limit is validated by the
    schema (no RecursionError); one level more is refused up front."""
    at_limit = _flex(MAX_DEPTH)
    assert _depth(at_limit) == MAX_DEPTH
    try:
        run_action("line_send_push", TOKEN, at_limit, dry_run=True)
    except InputError as exc:  # H1's flex rules may refuse it; never for its depth
        assert not any("nested too deep" in d["message"] for d in exc.details)
    too_deep = {"to": USER, "messages": [{"type": "flex", "altText": "deep",
                                          "contents": {"type": "bubble", "body": _flex(MAX_DEPTH)}}]}
    exc = refused("line_send_push", TOKEN, too_deep)
    assert any("nested too deep" in d["message"] for d in exc.details)
    # 200,000 levels built in Python: refused without recursion
    deep = leaf = []
    for _ in range(200000):
        leaf.append([])
        leaf = leaf[0]
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": deep})
    assert exc.details[0]["path"].startswith("inputs.messages")


def test_a_realistic_deep_flex_message_is_accepted():
    """LINE's own showcase bubbles nest boxes 3-4 deep; 10 is far beyond."""
    run_action("line_send_push", TOKEN, _flex(25), dry_run=True)


# ------------------------------------------------------- vendor integer ranges

NX_LINE = dict(manifest().action("nxcloud_send_line").example)
NX_VIBER = dict(manifest().action("nxcloud_send_viber").example)


@pytest.mark.parametrize("action,field", [("nxcloud_send_line", "tenant_id"), ("nxcloud_send_viber", "tenant_id"),
                                          ("nxcloud_send_line", "duration"), ("nxcloud_send_viber", "tag_id")])
def test_nxcloud_long_fields_are_bounded_to_a_java_long(action, field):
    """Seeds 000 and 001 (NXCloud's SAAS LINE/Viber send pages) type
    tenant_id, duration and tag_id as Long: at most 2^63-1. Was: a tenant_id
    of 10^400 was sent."""
    base = dict(manifest().action(action).example)
    if field == "duration":
        base = dict(base, type=5, filename="v.m4a", originalContentUrl="https://example.com/v.m4a")
        base.pop("content", None)
    for too_big in (10 ** 400, 2 ** 63, 1e300):
        exc = refused(action, NX, dict(base, **{field: too_big}))
        assert paths(exc) == ["inputs." + field]
    run_action(action, NX, dict(base, **{field: 2 ** 63 - 1}), dry_run=True)


@pytest.mark.parametrize("action", ["sobot_query_task_list", "sobot_query_send_records"])
def test_sobot_page_no_is_bounded_to_a_java_integer(action):
    """Seed 003 (Sobot's LINE API page) types page_no as Integer: at most 2^31-1."""
    base = dict(manifest().action(action).example)
    exc = refused(action, SOBOT, dict(base, page_no=2 ** 31))
    assert paths(exc) == ["inputs.page_no"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add("GET", re.compile(r"https?://.*/api/get_token.*"),
                 json={"item": {"token": "t-inputs-token", "expires_in": "86400"}, "ret_code": "000000"})
        run_action(action, SOBOT, dict(base, page_no=2 ** 31 - 1), dry_run=True)


def test_every_vendor_integer_field_has_a_maximum():
    """No integer field of an NXCloud or Sobot input schema is unbounded above."""
    from line_connector.validation import load_schema_file

    def walk(node, where):
        if isinstance(node, dict):
            types = node.get("type")
            types = types if isinstance(types, list) else [types]
            if "integer" in types and "enum" not in node and "const" not in node:
                assert "maximum" in node, where
            for k, v in node.items():
                walk(v, where + "." + k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, "%s[%d]" % (where, i))

    for spec in manifest().actions.values():
        if spec.name.startswith(("nxcloud_", "sobot_")):
            walk(load_schema_file(spec.inputs), spec.name)


@pytest.mark.parametrize("bad", [2 ** 63, -2 ** 63 - 1, 10 ** 5000], ids=["2^63", "-2^63-1", "10^5000"])
def test_integers_past_64_bits_are_refused_anywhere(bad):
    exc = refused("line_send_push", TOKEN, {"to": USER, "messages": [{"type": "text", "text": "x"}], "zz": bad})
    assert "inputs.zz" in paths(exc)


# ---------------------------------------------------------------- asset URLs

@pytest.mark.parametrize("field,value,why", [
    ("url", "https://api.line.me:0", "port"),
    ("url", "https://api.line.me:65536", "port"),
    ("url", "https://api.line.me:99999", "port"),
    ("http_proxy", "http://proxy.example:99999", "port"),
    ("http_proxy", "http://proxy.example:port", "valid URL"),
    ("http_proxy", "http://[::1:3128", "valid URL"),
    ("token_url", "https://u:p@api.line.me/oauth2/v3/token", "credentials"),
    ("url", "https://" + "a" * 64 + ".example.com", "host name"),  # urllib3 refuses it at connect time
    ("token_url", "https://api..line.me/oauth2/v3/token", "host name"),
])
def test_unusable_urls_are_invalid_assets(field, value, why):
    """Was: exit 1 'outcome unknown' for a request that was never sent."""
    asset = {"client_id": "1650000000", "client_secret": "cs-inputs-1234", field: value}
    exc = refused("line_send_push", asset, PUSH)
    assert exc.details[0]["path"] == "asset." + field and why in exc.details[0]["message"]


# ------------------------------------------------------------ bounded input size (CLI)

@pytest.mark.parametrize("where", ["asset", "inputs", "stdin"])
def test_cli_an_endless_input_is_refused_in_bounded_memory(where):
    """--asset /dev/zero (or an endless pipe on stdin) used to be read whole:
    GBs of memory and no end. Now at most 20 MiB + 1 byte is read, then exit 2
    naming the field. Bounds are generous: the read takes well under a second."""
    import resource

    from line_connector.cli import MAX_INPUT_BYTES

    args = ["run", "line_send_push"] + (["--" + where, "/dev/zero"] if where != "stdin" else [])
    with open("/dev/zero", "rb") as zero:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([sys.executable, "-m", "line_connector.cli", *args], capture_output=True,
                              stdin=zero if where == "stdin" else subprocess.DEVNULL, timeout=120)
    error = assert_exit_2(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), where)
    assert error["error"].startswith("%s: larger than 20 MiB" % where)
    assert MAX_INPUT_BYTES == 20 * 1024 * 1024
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib > before:  # this child set the new peak: it must be near the cap, not GBs
        assert peak_kib < 400 * 1024, "reading a bounded input used %d KiB" % peak_kib


def test_cli_a_large_but_real_input_is_not_refused_for_its_size(tmp_path):
    """The cap sits far above a real send: a multicast to 100,000 user IDs
    (~3.5 MB, LINE's 500 per request split by the action) is read and checked
    like any input, not refused for its size."""
    ids = ["U%032x" % i for i in range(100000)]
    doc = {"asset": TOKEN, "inputs": {"to": ids, "messages": [{"type": "text", "text": "hi"}]}}
    text = json.dumps(doc)
    assert 3 * 1024 * 1024 < len(text) < 5 * 1024 * 1024
    code, out, err = run_cli("run", "line_send_multicast", "--dry-run", stdin=text, timeout=300)
    assert "larger than" not in err
    assert code == 0, err[:2000]
