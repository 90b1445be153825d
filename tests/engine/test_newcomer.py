"""What a newcomer meets first (issue 21, SPEC section 12 "Doors that real
clients can use"): --version, describe, JSON text for --asset/--inputs,
`list` by vendor and area, `run ACTION --help`, `serve --sandbox`, distinct
default ports, a signed test event, no secret echoed, no internal words.
Most run ``cli.main`` in this process (fast); ``serve --sandbox`` runs as
the command a user types."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from line_connector import cli
from line_connector.manifest import manifest
from line_connector.validation import load_schema_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "line_connector.cli"]


def _main(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's --version / usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# ------------------------------------------------------------ --version, list, describe

def test_version_is_the_packages(capsys):

    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as fh:
        version = re.search(r'version="([^"]+)"', fh.read()).group(1)
    code, out, _ = _main(capsys, "--version")
    assert code == 0 and out.strip() == "line-connector %s" % version


def test_list_groups_every_action_once_by_vendor_and_area(capsys):
    code, out, _ = _main(capsys, "list")
    assert code == 0
    names = list(manifest().actions)
    listed = re.findall(r"^    (\S+)  ", out, re.M)
    assert sorted(listed) == sorted(names)  # each once
    vendors = re.findall(r"^(\S.*)$", out, re.M)
    assert vendors[:3] == ["LINE Messaging API", "NXCloud", "Sobot"]
    # every action sits under its vendor's heading
    blocks = re.split(r"^(?=\S)", out, flags=re.M)
    for block in blocks:
        head = block.splitlines()[0] if block.strip() else ""
        prefix = {"LINE Messaging API": "line_", "NXCloud": "nxcloud_", "Sobot": "sobot_"}.get(head)
        if prefix:
            assert all(n.startswith(prefix) for n in re.findall(r"^    (\S+)  ", block, re.M)), head
    code, out, _ = _main(capsys, "list", "--json")
    rows = json.loads(out)
    assert {r["name"] for r in rows} == set(names)
    assert {r["vendor"] for r in rows} == {"LINE Messaging API", "NXCloud", "Sobot"}
    send = [r for r in rows if r["name"] == "line_send_push"][0]
    assert send["area"] == "send messages"


def test_describe_shows_every_input_with_type_required_default_and_limits(capsys):
    code, out, _ = _main(capsys, "describe", "line_send_push")
    assert code == 0
    schema = load_schema_file("line/send_push.input.json")
    for name in schema["properties"]:
        assert re.search(r"^  %s  " % name, out, re.M), name
    assert re.search(r"^  to  string, required$", out, re.M)
    assert re.search(r"^  notificationDisabled  boolean, optional, default false$", out, re.M)
    assert "at most 5 item(s)" in out  # messages' maxItems
    assert "line_channel_access_token  fields: token" in out
    assert "| line-connector run line_send_push --sandbox" in out


def test_describe_json_matches_the_schema_and_its_example_runs(capsys):
    code, out, _ = _main(capsys, "describe", "nxcloud_send_line", "--json")
    doc = json.loads(out)
    schema = load_schema_file(manifest().actions["nxcloud_send_line"].inputs)
    assert [r["name"] for r in doc["inputs"]] == list(schema["properties"])
    assert {r["name"] for r in doc["inputs"] if r["required"]} == set(schema["required"])
    assert [a["name"] for a in doc["assets"]] == ["nxcloud"]
    proc = subprocess.run(["bash", "-c", doc["example"].replace("line-connector ", " ".join(CLI) + " ", 1)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["status_code"] == 200


def test_describe_unknown_action_is_exit_2_with_a_suggestion(capsys):
    code, out, err = _main(capsys, "describe", "line_send_pusj")
    assert code == 2 and out == ""
    doc = json.loads(err)
    assert doc["details"][0]["path"] == "action" and "line_send_push" in doc["details"][0]["message"]


def test_run_action_help_shows_that_actions_inputs(capsys):
    code, quota, _ = _main(capsys, "run", "line_get_quota", "--help")
    assert code == 0 and "--dry-run" in quota and "Inputs:\n  none" in quota
    code, push, _ = _main(capsys, "run", "line_send_push", "--help")
    assert code == 0 and "--dry-run" in push and re.search(r"^  messages  array", push, re.M)
    assert quota != push


# ------------------------------------------------------------ --asset / --inputs

def test_inputs_and_asset_take_json_text(capsys):
    code, out, err = _main(capsys, "run", "line_get_quota", "--inputs", "{}", "--sandbox")
    assert code == 0, err
    assert json.loads(out)[0]["status_code"] == 200
    code, out, err = _main(capsys, "run", "line_get_quota", "--dry-run",
                           "--asset", '{"token": "tok-abcdefghijklmnop"}', "--inputs", " {} ")
    assert code == 0, err
    assert "tok-abcdefghijklmnop" not in out  # masked, as from a file


def test_inputs_file_path_still_works_and_wins_over_text_look(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "{x}").write_text('{"bad": 1}', encoding="utf-8")  # a file whose name looks like JSON
    code, _, err = _main(capsys, "run", "line_get_quota", "--inputs", "{x}", "--dry-run",
                         "--asset", '{"token": "t"}')
    assert code == 2 and json.loads(err)["details"][0]["path"] == "inputs.bad"  # the file was read
    (tmp_path / "in.json").write_text("{}", encoding="utf-8")
    code, _, err = _main(capsys, "run", "line_get_quota", "--inputs", "in.json", "--sandbox")
    assert code == 0, err


@pytest.mark.parametrize("value, words", [
    ('{"to": ', "is not valid JSON text"),
    ("no-such-file.json", "takes JSON text (e.g. --inputs '{}') or the path of a JSON file"),
])
def test_bad_inputs_say_which_form_and_why(capsys, value, words):
    code, out, err = _main(capsys, "run", "line_get_quota", "--inputs", value, "--sandbox")
    assert code == 2 and out == ""
    doc = json.loads(err)
    assert doc["details"][0]["path"] == "inputs" and words in doc["details"][0]["message"]


def test_json_text_is_held_to_the_same_limits_as_a_file(capsys):
    code, _, err = _main(capsys, "run", "line_get_quota", "--inputs", "[" * 100000, "--sandbox")
    assert code == 2 and "nested too deep" in err
    code, _, err = _main(capsys, "run", "line_get_quota", "--inputs", '{"a": NaN}', "--sandbox")
    assert code == 2 and "not valid JSON" in err


# ------------------------------------------------------------ user-facing words

def test_no_internal_words_in_any_help(capsys):
    commands = [[]] + [[c] for c in ("list", "describe", "run", "sandbox", "webhook", "webhook-send", "mcp",
                                     "serve", "docs", "check", "export")]
    for command in commands:
        code, out, _ = _main(capsys, *command, "--help")
        assert code == 0, command
        assert not re.search(r"\bdoors?\b|SPEC", out), (command, out)


def test_webhook_never_echoes_a_secret_given_as_the_variable_name(capsys, monkeypatch):
    secret = "8d0b3c1e5f2a4b6c9e7d1f3a5b7c9e2d"  # as LINE issues them: 32 lower-case hex digits
    monkeypatch.delenv(secret, raising=False)
    for command in (["webhook", "--port", "0"], ["webhook-send", "http://127.0.0.1:9/"]):
        code, out, err = _main(capsys, *command, "--secret-env", secret)
        assert code == 2 and out == ""
        assert secret not in err and secret[:8] not in err
        assert "--secret-env LINE_CHANNEL_SECRET" in json.loads(err)["details"][0]["message"]
    monkeypatch.delenv("LC_UNSET_VAR", raising=False)
    code, _, err = _main(capsys, "webhook", "--secret-env", "LC_UNSET_VAR")
    assert code == 2 and "environment variable LC_UNSET_VAR is not set" in err  # a real name is shown


def test_install_hints_work_from_a_checkout():
    from line_connector import mcp_server
    from line_connector.service import app

    assert "pip install '.[service]'" in app.INSTALL_HINT
    assert "pip install '.[mcp]'" in mcp_server.INSTALL_HINT


def test_serve_and_sandbox_default_to_different_ports():
    parser = cli.build_parser()
    serve = parser.parse_args(["serve", "--sandbox"])
    sandbox = parser.parse_args(["sandbox"])
    assert (serve.port, sandbox.port) == (8080, 8090)


# ------------------------------------------------------------ serve --sandbox

@pytest.mark.parametrize("argv, path", [
    (["serve"], "--config"),
    (["serve", "--sandbox", "--config", "x.yaml"], "--config"),
    (["serve", "--sandbox", "--host", "0.0.0.0"], "--host"),
])
def test_serve_sandbox_refuses_what_it_cannot_do(capsys, argv, path):
    code, out, err = _main(capsys, *argv)
    assert code == 2 and out == ""
    assert json.loads(err)["details"][0]["path"] == path


def _read_json_object(stream, deadline):
    """The first JSON object the process prints (pretty-printed, several lines)."""
    text = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        text += line
        try:
            return json.loads(text)
        except ValueError:
            continue
    raise AssertionError("no JSON object on stdout: %r" % text)


def test_serve_sandbox_serves_every_kind_of_asset_with_no_config(tmp_path):
    env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=str(tmp_path / "user-cache"))
    proc = subprocess.Popen([*CLI, "serve", "--sandbox", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))
    try:
        guide = _read_json_object(proc.stdout, time.monotonic() + 60)
        url = guide["url"]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert set(guide["assets"]) == {"line", "line_webhook", "nxcloud", "sobot"}
        workdir = os.path.dirname(guide["webhook"]["events_file"])
        assert os.path.isdir(workdir)
        for name in ("line_get_quota", "nxcloud_send_line", "sobot_get_token"):  # no asset named: one fits
            example = manifest().actions[name].example or {}
            answer = requests.post("%s/v1/actions/%s" % (url, name), json={"inputs": example}, timeout=30)
            assert answer.status_code == 200, (name, answer.text)
        from line_connector.webhook_server import send_test_event

        status, text = send_test_event(guide["webhook"]["url"], guide["webhook"]["channel_secret"])
        assert status == 200 and json.loads(text)["handed_over"] == 1
        with open(guide["webhook"]["events_file"], encoding="utf-8") as fh:
            assert len(fh.read().splitlines()) == 1
        bad, _ = send_test_event(guide["webhook"]["url"], "not-the-secret")
        assert bad == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert not os.path.exists(workdir)  # config, events and state go with the trial
    assert not os.path.exists(tmp_path / "user-cache" / "state")  # the user's cache is never touched


# ------------------------------------------------------------ local webhook receiver

def _receiver(secret, out):
    from line_connector import webhook_server

    server = webhook_server.make_server(secret, "127.0.0.1", 0, out=out)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def test_receiver_remembers_events_in_memory_for_its_run_only(tmp_path, monkeypatch):
    from line_connector.webhook_server import send_test_event, test_event_body

    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(tmp_path / "cache"))
    body = test_event_body(text="once per run")
    printed = []
    for _run in range(2):  # a restart
        out = io.StringIO()
        server, thread = _receiver("s3cret", out)
        try:
            for _ in range(2):  # LINE redelivers the same event
                status, _ = send_test_event(server.url, "s3cret", body=body)
                assert status == 200
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
        printed.append(out.getvalue().splitlines())
    assert [len(p) for p in printed] == [1, 1]  # de-duplicated within a run, shown again after a restart
    assert "once per run" in printed[1][0]
    assert not os.path.exists(tmp_path / "cache" / "state")  # nothing kept across runs


def test_webhook_send_signs_as_line_does(capsys, monkeypatch):
    out = io.StringIO()
    server, thread = _receiver("s3cret", out)
    try:
        monkeypatch.setenv("LC_TEST_SECRET", "s3cret")
        code, printed, err = _main(capsys, "webhook-send", server.url, "--secret-env", "LC_TEST_SECRET",
                                   "--text", "hi there")
        assert code == 0, err
        assert json.loads(printed)["status"] == 200
        monkeypatch.setenv("LC_TEST_SECRET", "wrong")
        code, printed, _ = _main(capsys, "webhook-send", server.url, "--secret-env", "LC_TEST_SECRET")
        assert code == 1 and json.loads(printed)["status"] == 400  # the receiver refused the signature
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(events) == 1 and events[0]["message"]["text"] == "hi there"
    code, _, err = _main(capsys, "webhook-send", "http://127.0.0.1:1/", "--secret-env", "LC_TEST_SECRET")
    assert code == 1 and "did not answer" in err


# ------------------------------------------------------------ sandbox stats

def test_sandbox_faults_never_hit_the_stats():
    from line_connector.sandbox import FaultPlan, Sandbox

    auth = {"Authorization": "Bearer sandbox-channel-access-token"}
    with Sandbox(faults=FaultPlan(rate=1.0, kinds=("500", "reset"), seed=1)) as sb:
        for _ in range(10):  # every request is faulted, except the stats
            assert requests.get(sb.url + "/_sandbox/stats", timeout=10).status_code == 200
        try:
            vendor = requests.get(sb.url + "/v2/bot/message/quota", headers=auth, timeout=10).status_code
        except requests.ConnectionError:
            vendor = "reset"
        assert vendor in (500, "reset")
    with Sandbox(faults=FaultPlan(script=["500"])) as sb:
        assert requests.get(sb.url + "/_sandbox/stats", timeout=10).status_code == 200
        answer = requests.get(sb.url + "/v2/bot/message/quota", headers=auth, timeout=10)
        assert answer.status_code == 500  # the scripted fault was kept for the vendor request
        stats = requests.get(sb.url + "/_sandbox/stats", timeout=10).json()
        assert stats["faults_injected"] == {"500": 1}
