"""``tools:`` in the config narrows the MCP tool list (SPEC 12)."""
import json

import pytest

from line_connector.config import load_config
from line_connector.errors import InputError
from line_connector.mcp_server import call_tool, tool_definitions

ASSETS = {"ops_line": {"token": "t0ken-for-the-filter-test"}, "ops_nx": {"access_key": "k", "access_secret": "s"}}


def _config(tmp_path, **extra):
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(dict({"assets": ASSETS}, **extra)), encoding="utf-8")
    return load_config(str(path))


def test_names_and_glob_patterns_narrow_the_list(tmp_path):
    cfg = _config(tmp_path, tools=["line_send_*", "line_get_quota"])
    names = [t["name"] for t in tool_definitions(cfg)]
    assert names and set(names) == {n for n in names if n.startswith("line_send_")} | {"line_get_quota"}
    assert "line_send_push" in names and "nxcloud_send_line" not in names
    # a tool left out cannot be called either
    is_error, payload, _ = call_tool(cfg, "nxcloud_send_line", {})
    assert is_error and payload["details"][0]["path"] == "name"


def test_left_out_every_action_is_a_tool(tmp_path):
    from line_connector.manifest import manifest

    assert len(tool_definitions(_config(tmp_path))) == len(manifest().actions)


def test_a_pattern_that_matches_nothing_is_a_config_error(tmp_path):
    with pytest.raises(InputError) as info:
        _config(tmp_path, tools=["line_send_*", "line_sned_push"])
    assert [d["path"] for d in info.value.details] == ["config.tools[1]"]
