"""End to end: the line-connector CLI against the embedded sandbox."""
import json

from helpers import TEXT, TOKEN, USER
from line_connector.sandbox import FaultPlan, Sandbox

PUSH_INPUTS = {"to": USER, "messages": TEXT}


def test_push_against_the_embedded_sandbox(cli):
    code, out, err = cli("run", "line_send_push", "--sandbox", stdin={"inputs": PUSH_INPUTS})
    assert code == 0, err
    (result,) = json.loads(out)
    assert result["status_code"] == 200 and len(result["json_body"]["sentMessages"]) == 1
    assert "X-Line-Request-Id" in result["response_headers"]


def test_files_instead_of_stdin(cli, tmp_path, line_sandbox):
    asset = tmp_path / "asset.json"
    inputs = tmp_path / "inputs.json"
    asset.write_text(json.dumps(line_sandbox.demo_assets()["line_channel_access_token"]))
    inputs.write_text(json.dumps(PUSH_INPUTS))
    code, out, err = cli("run", "line_send_push", "--asset", str(asset), "--inputs", str(inputs))
    assert code == 0, err
    assert line_sandbox.line.per_recipient[USER] == 1


def test_bad_inputs_exit_2_name_the_field_and_send_nothing(cli, line_sandbox):
    asset = line_sandbox.demo_assets()["line_channel_access_token"]
    cases = [({"messages": TEXT}, "inputs.to"),
             ({"to": USER, "messages": []}, "inputs.messages"),
             ({"to": USER, "messages": TEXT * 6}, "inputs.messages"),
             ({"to": ["U1"], "messages": TEXT}, "inputs.to")]
    for inputs, path in cases:
        code, out, err = cli("run", "line_send_push", stdin={"asset": asset, "inputs": inputs})
        assert code == 2, (inputs, err)
        assert out == ""
        error = json.loads(err)
        assert error["error"] and path in [d["path"] for d in error["details"]]
    assert line_sandbox.requests == 0


def test_unreadable_stdin_and_unknown_action_exit_2(cli):
    code, _, err = cli("run", "line_send_push", stdin="{not json")
    assert code == 2 and json.loads(err)["details"][0]["path"] == "stdin"
    code, _, err = cli("run", "line_send_everything", stdin="{}")
    assert code == 2 and "unknown action" in json.loads(err)["error"]
    code, _, err = cli("frobnicate")
    assert code == 2 and "invalid command line" in json.loads(err)["error"]
    assert "Traceback" not in err


def test_no_stdin_at_all_is_a_clean_input_error(cli):
    code, out, err = cli("run", "line_send_push")
    assert code == 2 and "inputs.to" in err and "Traceback" not in err


def test_refused_push_exits_1_and_keeps_the_body(cli, line_sandbox):
    asset = {"url": line_sandbox.url, "token": TOKEN}
    code, out, err = cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH_INPUTS})
    assert code == 1
    (result,) = json.loads(out)
    assert result["status_code"] == 401 and result["ok"] is False
    assert result["json_body"]["message"].startswith("Authentication failed")
    assert json.loads(err)["error"].startswith("1 of 1 request(s) failed")
    assert TOKEN not in out + err


def test_server_error_exits_1_after_bounded_retries_with_body_kept(cli):
    with Sandbox(faults=FaultPlan(rate=1.0, kinds=("500",), seed=1)) as sb:
        asset = sb.demo_assets()["line_channel_access_token"]
        code, out, err = cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH_INPUTS})
        assert code == 1
        (result,) = json.loads(out)
        assert result["status_code"] == 500 and result["attempts"] == 4
        assert result["json_body"]["message"].startswith("Internal server error")
        assert sb.line.deliveries == []


def test_dry_run_sends_nothing_and_masks_the_secret(cli, line_sandbox):
    asset = {"url": line_sandbox.url, "token": TOKEN}
    code, out, err = cli("run", "line_send_push", "--dry-run", stdin={"asset": asset, "inputs": PUSH_INPUTS})
    assert code == 0, err
    (request,) = json.loads(out)
    assert request["method"] == "POST" and request["url"] == line_sandbox.url + "/v2/bot/message/push"
    assert request["headers"]["Authorization"] == "Bearer ***"
    assert request["body"] == PUSH_INPUTS
    assert TOKEN not in out + err
    assert line_sandbox.requests == 0


def test_oauth_asset_against_the_sandbox(cli, line_sandbox):
    asset = line_sandbox.demo_assets()["line_oauth2_client_credentials"]
    code, out, err = cli("run", "line_get_bot_info", stdin={"asset": asset})
    assert code == 0, err
    assert json.loads(out)[0]["json_body"]["displayName"] == "Sandbox Bot"
    assert line_sandbox.line.token_requests == 1
    bad = dict(asset, client_secret="wrong-secret-value")
    code, out, err = cli("run", "line_get_bot_info", stdin={"asset": bad})
    assert code == 1 and json.loads(out)[0]["json_body"]["error"] == "invalid_client"
    assert "wrong-secret-value" not in out + err


def test_python_fixture_runs_against_the_sandbox(connector, line_sandbox):
    (result,) = connector.run("line_send_push", {}, PUSH_INPUTS, sandbox=line_sandbox)
    assert result["ok"]
    assert line_sandbox.line.per_retry_key[result["retry_key"]] == 1
