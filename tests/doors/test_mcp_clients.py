"""The MCP server as clients no one here wrote meet it (SPEC 12, issue 21).

* the MCP Inspector CLI (``@modelcontextprotocol/inspector``, 0.15 and the
  current version, pinned in .ci/package.json) lists the tools and calls
  ``line_send_push`` and ``nxcloud_send_line`` through
  ``line-connector mcp --config ...`` against a sandbox; it converts each
  argument by the property's top-level ``type``, so a schema without one
  cannot be called;
* Ajv 2020 in strict mode (what JS MCP clients validate with) compiles
  every tool's input schema;
* the whole ``tools/list`` answer for every action fits 96 KiB of JSON, with
  room for the actions still to come (~101).

Each Inspector call starts Node and a fresh ``line-connector mcp`` process
(~4 s), so the tests that make two calls take ~9 s.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from line_connector.manifest import manifest
from clients.tools import HERE, node, node_env, npm_package

USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
MAX_LIST = 96 * 1024
FUTURE_ACTIONS = 101  # SPEC 14 grows the pack to about this many actions
INSPECTORS = ("inspector-0.15", "inspector-current")


@pytest.fixture(scope="module")
def mcp_setup(tmp_path_factory):
    from line_connector.sandbox import Sandbox

    tmp = tmp_path_factory.mktemp("mcpclients")
    sandbox = Sandbox().start()
    demo = sandbox.demo_assets()
    cfg = tmp / "cfg.yaml"
    cfg.write_text(json.dumps({"assets": {"ops_line": demo["line_channel_access_token"],
                                          "ops_nx": demo["nxcloud"], "ops_sobot": demo["sobot"],
                                          "ops_secret": demo["line_channel_secret"]}}), encoding="utf-8")
    script = shutil.which("line-connector", path=os.path.dirname(sys.executable))
    server = [script] if script else [sys.executable, "-m", "line_connector.cli"]
    yield {"tmp": tmp, "cfg": cfg, "server": server + ["mcp", "--config", str(cfg)], "sandbox": sandbox}
    sandbox.stop()


def inspector(setup, version, method, *args, exits=(0,)):
    """Run the Inspector CLI once; its stdout parsed as JSON. The current
    version exits 5 when the tool answers isError (``exits``)."""
    folder = npm_package(version)
    server = setup["server"]
    if version == "inspector-0.15":
        # 0.15 takes the server from an mcp.json file (its own --config would
        # swallow ours on an inline command line)
        servers = setup["tmp"] / "inspector-servers.json"
        servers.write_text(json.dumps({"mcpServers": {"line": {"command": server[0], "args": server[1:]}}}),
                           encoding="utf-8")
        cmd = [node(), os.path.join(folder, "cli", "build", "cli.js"), "--cli", "--config", str(servers),
               "--server", "line", "--method", method] + list(args)
    else:
        cmd = [node(), os.path.join(folder, "clients", "launcher", "build", "index.js"), "--cli",
               "--method", method] + list(args) + ["--"] + server
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=node_env(),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode in exits, (version, proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def listed(mcp_setup):
    return inspector(mcp_setup, "inspector-current", "tools/list")


def test_tools_list_fits_an_agent_now_and_with_the_actions_to_come(listed):
    tools = listed["tools"]
    assert {t["name"] for t in tools} == set(manifest().actions)
    size = len(json.dumps(listed, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    assert size <= MAX_LIST, size
    # the pack is growing to ~101 actions: the average tool must leave room for them
    assert size / len(tools) <= MAX_LIST / FUTURE_ACTIONS, (size, len(tools))


def _nodes(schema, where="inputSchema"):
    yield where, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _nodes(sub, "%s.%s" % (where, name))
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], where + "[]")


def test_every_schema_is_plain_standard_json_schema(listed):
    standard = {"type", "properties", "required", "items", "enum", "const", "description", "default",
                "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems", "minProperties",
                "maxProperties", "$schema", "additionalProperties"}
    for tool in listed["tools"]:
        schema = tool["inputSchema"]
        assert schema["type"] == "object"
        assert not set(schema) & {"oneOf", "anyOf", "allOf", "if", "not"}, tool["name"]
        for where, node_ in _nodes(schema):
            assert isinstance(node_.get("type"), str), (tool["name"], where)
            assert set(node_) <= standard, (tool["name"], where, set(node_) - standard)
        text = json.dumps(schema)
        for word in ("$comment", "maxUtf16Length", "errorMessage", '"format"'):
            assert word not in text, (tool["name"], word)
        # a file on the server's machine is never an MCP input (only the CLI reads files)
        assert not set(schema["properties"]) & {"save_to", "image_path"}, tool["name"]


def test_each_utf16_limit_is_a_standard_max_length(listed):
    tools = {t["name"]: t["inputSchema"] for t in listed["tools"]}
    # line_create_audience.description: maxUtf16Length 120 in the pack's schema
    assert tools["line_create_audience"]["properties"]["description"]["maxLength"] == 120
    # messages say which message types exist, compactly
    items = tools["line_send_push"]["properties"]["messages"]["items"]
    assert "text" in items["properties"]["type"]["enum"] and items["required"] == ["type"]


def test_ajv_2020_strict_compiles_every_tool_schema(listed, tmp_path):
    npm_package("ajv")
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(listed), encoding="utf-8")
    proc = subprocess.run([node(), os.path.join(HERE, "ajv_strict.js"), str(path)], capture_output=True,
                          text=True, timeout=120, env=node_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == {"compiled": len(listed["tools"]), "failed": 0}


@pytest.mark.parametrize("version", INSPECTORS)
def test_the_inspector_calls_the_send_tools(mcp_setup, version):
    sandbox = mcp_setup["sandbox"]
    before = len(sandbox.line.deliveries)
    push = inspector(mcp_setup, version, "tools/call", "--tool-name", "line_send_push", "--tool-arg",
                     "to=%s" % USER, 'messages=[{"type":"text","text":"hello from the inspector %s"}]' % version)
    assert push.get("isError") is not True, push
    assert push["structuredContent"]["results"][0]["status_code"] == 200
    assert len(sandbox.line.deliveries) == before + 1
    nx = inspector(mcp_setup, version, "tools/call", "--tool-name", "nxcloud_send_line", "--tool-arg",
                   "tenant_id=1", "appkey=demo", "to=+8613800000000", "type=1", "content=hi")
    assert nx.get("isError") is not True, nx
    assert nx["structuredContent"]["results"][0]["json_body"]["code"] == 0


def test_a_call_the_compact_schema_allows_is_still_validated_in_full(mcp_setup):
    """The tool schema only says a message has a type; the pack still checks
    the whole message and its tool error names the field."""
    out = inspector(mcp_setup, "inspector-current", "tools/call", "--tool-name", "line_send_push",
                    "--tool-arg", "to=%s" % USER, 'messages=[{"type":"sticker","packageId":"1"}]', exits=(5,))
    assert out["isError"] is True
    paths = [d["path"] for d in out["structuredContent"]["details"]]
    assert any(p.startswith("inputs.messages[0]") for p in paths), paths
