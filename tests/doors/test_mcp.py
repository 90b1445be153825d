"""``line-connector mcp`` driven by the official MCP SDK's own stdio client.

The server runs as a real subprocess (``line-connector mcp --config cfg.yaml``)
with its assets pointed at a sandbox on 127.0.0.1; the client is
``mcp.client.stdio.stdio_client`` + ``ClientSession``, what an agent host uses.
One session runs the whole scenario (module fixture); each test asserts one
promise of SPEC 10 on what it recorded.
"""
import json
import os
import re
import shutil
import sys

import pytest

from line_connector.manifest import manifest

needs_sdk = pytest.mark.skipif(sys.version_info < (3, 10),
                               reason="the MCP Python SDK (mcp 2.x) needs Python 3.10 or later")

CANARY_TOKEN = "canaryTOKEN-5f3b9d7e1a2c4e6f8a0b"
WRONG_TOKEN = "wrongCANARY-0a9b8c7d6e5f4a3b2c1d"
USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"


def _config(sandbox, path):
    demo = sandbox.demo_assets()
    doc = {"assets": {
        "ops_line": {"url": sandbox.url, "token": "${H8_LINE_TOKEN}"},
        "wrong_line": {"url": sandbox.url, "token": WRONG_TOKEN},
        "ops_secret": demo["line_channel_secret"],
        "ops_nx": demo["nxcloud"],
        "ops_sobot": demo["sobot"],
    }}
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return path


async def _scenario(cfg, errlog, env):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    # the installed console script, as a desktop client starts it (README);
    # this interpreter's own, not a version manager's shim that may pick another
    script = shutil.which("line-connector", path=os.path.dirname(sys.executable))
    command, args = (script, []) if script else (sys.executable, ["-m", "line_connector.cli"])
    params = StdioServerParameters(command=command, args=args + ["mcp", "--config", str(cfg)], env=env)
    out = {}
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = (await session.list_tools()).tools
            calls = {
                "quota": ("line_get_quota", {"asset": "ops_line"}),
                "push": ("line_send_push", {"asset": "ops_line", "to": USER,
                                            "messages": [{"type": "text", "text": "hello from mcp"}]}),
                "invalid": ("line_send_push", {"asset": "ops_line", "to": USER,
                                               "messages": [{"type": "text"}]}),
                "refused": ("line_get_quota", {"asset": "wrong_line"}),
                "ambiguous": ("line_get_quota", {}),
                "sobot": ("sobot_query_task_list", {}),
                "unknown_asset": ("line_get_quota", {"asset": "nope"}),
            }
            for key, (name, args) in calls.items():
                out[key] = await session.call_tool(name, args)
    return out


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    import anyio

    from line_connector.sandbox import Sandbox

    tmp = tmp_path_factory.mktemp("mcp")
    sandbox = Sandbox(credentials={"token": CANARY_TOKEN}).start()
    try:
        cfg = _config(sandbox, tmp / "cfg.yaml")
        env = dict(os.environ, H8_LINE_TOKEN=CANARY_TOKEN,
                   LINE_CONNECTOR_CACHE_DIR=str(tmp / "cache"))
        errpath = tmp / "stderr.log"
        with open(errpath, "w", encoding="utf-8") as errlog:
            out = anyio.run(_scenario, cfg, errlog, env)
        out["stats"] = sandbox.stats()
        out["deliveries"] = list(sandbox.line.deliveries)
        out["stderr"] = errpath.read_text(encoding="utf-8")
    finally:
        sandbox.stop()
    return out


def _payload(result):
    """Structured content, checked equal to the text rendering."""
    assert result.structured_content is not None
    text = [c.text for c in result.content if c.type == "text"]
    assert text and json.loads(text[0]) == result.structured_content
    return result.structured_content


@needs_sdk
def test_every_action_is_a_tool_with_a_self_contained_schema(session_run):
    tools = {t.name: t for t in session_run["tools"]}
    assert set(tools) == set(manifest().actions)
    assert len(session_run["tools"]) == len(manifest().actions)
    for name, tool in tools.items():
        spec = manifest().action(name)
        assert tool.title == spec.title and tool.description.startswith(spec.description)
        schema = tool.input_schema
        text = json.dumps(schema)
        # references resolved: only local ones (recursive flex boxes) remain,
        # and each points at a definition the document itself holds
        for ref in re.findall(r'"\$ref": "([^"]*)"', text):
            assert ref.startswith("#/$defs/") and ref[len("#/$defs/"):] in schema["$defs"], (name, ref)
        assert "discriminator" not in text and "file:" not in text
        assert schema["properties"]["asset"]["type"] == "string"
        assert "asset" not in schema.get("required", [])
    # no reference at all where the schema has no recursion
    assert "$ref" not in json.dumps(tools["line_get_quota"].input_schema)
    assert "$ref" not in json.dumps(tools["nxcloud_send_line"].input_schema)
    # the asset argument lists exactly the configured assets that fit
    assert tools["line_send_push"].input_schema["properties"]["asset"]["enum"] == ["ops_line", "wrong_line"]
    assert tools["nxcloud_send_line"].input_schema["properties"]["asset"]["enum"] == ["ops_nx"]


@needs_sdk
def test_resolved_schema_validates_alone_like_the_pack(session_run):
    """A JSON Schema validator with no access to the pack's files accepts
    and rejects messages as the pack's own validator does."""
    import jsonschema

    from line_connector.validation import iter_errors

    # SPEC 12: the tool schema is a compact description now; the full,
    # self-contained rendering (schema_views.resolved_schema, which the
    # OpenAPI document and the Turbine export carry) still validates alone
    from line_connector.schema_views import resolved_schema

    schema = resolved_schema(manifest().action("line_send_push").inputs)
    schema["properties"]["asset"] = {"type": "string"}
    validator = jsonschema.Draft202012Validator(schema)  # no registry: a $ref outside would fail
    flex = {"type": "flex", "altText": "x", "contents": {"type": "bubble", "body": {
        "type": "box", "layout": "vertical", "contents": [
            {"type": "box", "layout": "horizontal", "contents": [{"type": "text", "text": "nested"}]}]}}}
    good = [{"to": USER, "messages": [{"type": "text", "text": "hi"}]},
            {"to": USER, "messages": [flex]}]
    bad = [{"to": USER, "messages": [{"type": "text"}]},
           {"to": USER, "messages": [{"type": "sticker", "packageId": "1"}]},
           {"to": "not-an-id", "messages": [{"type": "text", "text": "hi"}]},
           {"to": USER, "messages": []}]
    for inputs in good:
        assert not list(iter_errors(manifest().action("line_send_push").inputs, inputs))
        assert validator.is_valid(dict(inputs, asset="ops_line")), inputs
    for inputs in bad:
        assert list(iter_errors(manifest().action("line_send_push").inputs, inputs))
        assert not validator.is_valid(inputs), inputs


@needs_sdk
def test_annotations_come_from_the_action_classes(session_run):
    tools = {t.name: t.annotations for t in session_run["tools"]}
    read, send, validate = tools["line_get_quota"], tools["line_send_push"], tools["line_validate_push"]
    assert (read.read_only_hint, read.idempotent_hint, read.destructive_hint) == (True, True, False)
    # the same push again, without a caller's retry_key, gets a fresh key: a second message (MCP's
    # idempotentHint promises no further effect, so it is false; a retry_key argument makes a resend safe)
    assert (send.read_only_hint, send.idempotent_hint, send.destructive_hint) == (False, False, False)
    assert (validate.read_only_hint, validate.idempotent_hint) == (True, True)
    # a reply token works once and has no retry key; NXCloud has none either
    assert tools["line_send_reply"].idempotent_hint is False
    assert tools["nxcloud_send_line"].idempotent_hint is False
    assert tools["nxcloud_send_line"].read_only_hint is False
    assert tools["sobot_query_task_list"].read_only_hint is True
    assert tools["line_parse_webhook"].read_only_hint is True
    assert tools["line_parse_webhook"].open_world_hint is False
    # deleting, leaving a chat and replacing a rich menu cannot be undone by a resend
    for name in ("line_delete_rich_menu", "line_delete_audience", "line_leave_chat", "line_link_rich_menu"):
        assert tools[name].destructive_hint is True, name
    assert tools["line_create_rich_menu"].idempotent_hint is False  # no retry key: a resend makes a second menu
    assert tools["line_create_rich_menu"].destructive_hint is False
    assert tools["line_validate_rich_menu"].read_only_hint is True
    assert tools["line_get_profile"].read_only_hint is True


@needs_sdk
def test_a_read_returns_the_results_as_structured_content(session_run):
    result = session_run["quota"]
    assert result.is_error is not True
    payload = _payload(result)
    assert payload["results"][0]["status_code"] == 200
    assert payload["results"][0]["json_body"]["type"] in ("none", "limited")


@needs_sdk
def test_a_send_is_delivered_once(session_run):
    payload = _payload(session_run["push"])
    assert session_run["push"].is_error is not True
    first = payload["results"][0]
    assert first["status_code"] == 200 and first["retry_key"]
    assert session_run["stats"]["line"]["deliveries"] == 1
    [delivery] = session_run["deliveries"]
    assert delivery["to"] == [USER] and delivery["retry_key"] == first["retry_key"]


@needs_sdk
def test_invalid_input_is_a_tool_error_with_the_cli_details(session_run, cli, tmp_path):
    result = session_run["invalid"]
    assert result.is_error is True
    payload = _payload(result)
    assert {"path": "inputs.messages[0].text", "message": "is required"} in payload["details"]
    # the same object the CLI prints on stderr for the same inputs (exit 2)
    code, _, err = cli("run", "line_send_push", "--sandbox",
                       stdin={"inputs": {"to": USER, "messages": [{"type": "text"}]}})
    assert code == 2
    assert json.loads(err)["details"] == payload["details"]


@needs_sdk
def test_a_refusal_is_a_tool_error_with_the_vendor_answer(session_run):
    result = session_run["refused"]
    assert result.is_error is True
    payload = _payload(result)
    assert "error" in payload
    assert payload["output"][0]["status_code"] == 401
    assert "authentication failed" in payload["output"][0]["note"]


@needs_sdk
def test_asset_choice_errors(session_run):
    ambiguous = _payload(session_run["ambiguous"])
    assert session_run["ambiguous"].is_error is True
    assert ambiguous["details"][0]["path"] == "asset"
    assert "ops_line" in ambiguous["details"][0]["message"]
    unknown = _payload(session_run["unknown_asset"])
    assert unknown["details"][0]["path"] == "asset"
    # one fitting asset: no asset argument needed
    assert session_run["sobot"].is_error is not True
    assert _payload(session_run["sobot"])["results"][0]["json_body"]["ret_code"] == "000000"


@needs_sdk
def test_no_secret_in_any_result_or_log(session_run):
    texts = [session_run["stderr"]]
    for key in ("quota", "push", "invalid", "refused", "ambiguous", "sobot", "unknown_asset"):
        result = session_run[key]
        texts.append(json.dumps(result.model_dump(mode="json")))
    for text in texts:
        assert CANARY_TOKEN not in text and WRONG_TOKEN not in text
    # stderr is JSON lines only, and the calls were logged
    lines = [json.loads(line) for line in session_run["stderr"].splitlines() if line.strip()]
    assert any(rec.get("event") == "tool_call" and rec.get("tool") == "line_send_push" for rec in lines)


@needs_sdk
def test_bad_config_exits_2_before_serving(cli, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("assets:\n  ops: {token: '${H8_UNSET_VARIABLE}'}\n", encoding="utf-8")
    code, _, err = cli("mcp", "--config", str(cfg), stdin="")
    assert code == 2
    report = json.loads(err)
    assert report["details"][0]["path"] == "config.assets.ops.token"
    assert "H8_UNSET_VARIABLE" in report["details"][0]["message"]


def test_without_the_sdk_mcp_exits_2_saying_what_to_install(monkeypatch, capsys, tmp_path):
    from line_connector import cli

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("assets:\n  ops: {token: abcdefgh}\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "mcp_types", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "mcp.server.lowlevel", None)
    assert cli.main(["mcp", "--config", str(cfg)]) == 2
    report = json.loads(capsys.readouterr().err)
    assert "pip install 'line-connector[mcp]'" in report["error"]
    assert report["details"][0]["path"] == "mcp"


def test_file_paths_on_this_machine_are_refused(tmp_path):
    """An MCP client (a model acting on text it was given) must not make the
    server write or read local files: save_to and image_path are tool errors
    naming the field, and nothing is written or sent."""
    from line_connector.config import load_config
    from line_connector.mcp_server import call_tool
    from line_connector.sandbox import Sandbox
    from line_connector.sandbox.line_richmenu import DEMO_EMPTY_RICH_MENU_ID, DEMO_IMAGE_MESSAGE_ID

    with Sandbox() as sb:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(json.dumps({"assets": {"ops_line": sb.demo_assets()["line_channel_access_token"]}}),
                       encoding="utf-8")
        config = load_config(str(cfg))
        target = tmp_path / "written.bin"
        is_error, payload, _ = call_tool(config, "line_get_message_content",
                                         {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(target)})
        assert is_error and payload["details"][0]["path"] == "inputs.save_to"
        is_error, payload, _ = call_tool(config, "line_upload_rich_menu_image",
                                         {"richMenuId": DEMO_EMPTY_RICH_MENU_ID, "image_path": str(target)})
        assert is_error and payload["details"][0]["path"] == "inputs.image_path"
        assert not target.exists() and sb.stats()["requests"] == 0
        is_error, payload, _ = call_tool(config, "line_get_message_content", {"messageId": DEMO_IMAGE_MESSAGE_ID})
        assert not is_error, payload


@needs_sdk
def test_the_tool_list_an_sdk_client_receives_fits_96_kib(session_run):
    """SPEC 12 (also checked with the Inspector CLI in test_mcp_clients.py,
    which needs the npm clients): all tools in at most 96 KiB of JSON, with
    room left for ~101 actions, and no $comment or pack keyword in any."""
    listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in session_run["tools"]]
    size = len(json.dumps({"tools": listed}, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    assert size <= 96 * 1024 and size / len(listed) <= 96 * 1024 / 101, size
    text = json.dumps(listed)
    for word in ("$comment", "maxUtf16Length", "maxGraphemes", "errorMessage", "discriminator", '"if"'):
        assert word not in text, word
