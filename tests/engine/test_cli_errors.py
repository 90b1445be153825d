"""Environment errors a newcomer can act on (issue 13): a busy or invalid
port, an address the machine does not have, an unreadable file, a bare
command, a terminal on stdin, the sandbox's own credentials. Each is exit 2
(or 1 for the refused request) with a JSON error naming the cause and the fix,
never "internal error" and never a traceback.

Every test drives the real CLI in a subprocess; the busy port is a real
listening socket on 127.0.0.1.
"""
import argparse
import errno
import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time

import pytest

from line_connector import cli

CLI = [sys.executable, "-m", "line_connector.cli"]
PUSH = {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", "messages": [{"type": "text", "text": "hi"}]}


def _cli(*args, stdin="", env=None, timeout=60):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _error_of(proc):
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stderr)
    assert set(doc) == {"error", "details"}
    return doc


@pytest.fixture
def busy_port():
    """A port some other program is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("command", [["sandbox"], ["webhook", "--secret-env", "LC_TEST_SECRET"]])
def test_busy_port_says_which_and_how_to_fix(command, busy_port):
    proc = _cli(*command, "--port", str(busy_port), env={"LC_TEST_SECRET": "s3cret-value"}, timeout=30)
    assert proc.returncode == 2, proc.stderr
    err = _error_of(proc)
    assert "port %d is in use; pick another with --port" % busy_port in err["error"]
    assert err["details"][0]["path"] == "--port"
    assert proc.stdout == ""  # nothing printed as if it had started


@pytest.mark.parametrize("command", [["sandbox"], ["webhook", "--secret-env", "LC_TEST_SECRET"]])
@pytest.mark.parametrize("port", ["-1", "70000", "65536", "http", "80.5"])
def test_invalid_port_is_a_usage_error_naming_the_range(command, port):
    proc = _cli(*command, "--port", port, env={"LC_TEST_SECRET": "s3cret-value"}, timeout=30)
    assert proc.returncode == 2
    err = _error_of(proc)
    assert err["details"][0]["path"] == "--port"
    assert "0 to 65535" in err["error"] and repr(port) in err["error"]
    assert "OverflowError" not in proc.stderr


def test_port_range_edges_are_accepted_by_the_parser():
    parser = cli.build_parser()
    assert parser.parse_args(["sandbox", "--port", "0"]).port == 0
    assert parser.parse_args(["sandbox", "--port", "65535"]).port == 65535
    assert parser.parse_args(["webhook", "--secret-env", "X", "--port", "1"]).port == 1


def test_address_not_on_this_machine_names_host():
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a local interface
    proc = _cli("sandbox", "--host", "192.0.2.1", "--port", "0", timeout=30)
    assert proc.returncode == 2
    err = _error_of(proc)
    assert err["details"][0]["path"] == "--host"
    assert "192.0.2.1 is not an address of this machine" in err["error"] and "--host 127.0.0.1" in err["error"]


def test_privileged_port_message():
    """EACCES cannot be provoked here (tests may run as root), so the mapping
    is checked directly on the error a non-root bind to port 80 raises."""
    args = argparse.Namespace(port=80, host="127.0.0.1")
    err = cli._environment_error(OSError(errno.EACCES, "Permission denied"), args)
    assert err["error"] == "port 80 needs privileges on this system; pick one above 1023 with --port"
    assert err["details"] == [{"path": "--port", "message": err["error"]}]
    # an OSError that is neither a bind error nor about a file is a bug, not the user's to fix
    assert cli._environment_error(OSError(errno.EPIPE, "Broken pipe"), args) is None


def test_other_os_errors_stay_internal_errors_without_traceback(monkeypatch, capsys):
    """An OSError that is not the user's to fix is still the one-line JSON
    internal error, never a traceback escaping main()."""
    def boom(args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "cmd_list", boom)
    assert cli.main(["list"]) == 1
    err = json.loads(capsys.readouterr().err)
    assert err["error"].startswith("internal error: OSError")


def test_unreadable_input_files(tmp_path):
    missing = tmp_path / "nope.json"
    proc = _cli("run", "line_send_push", "--asset", str(missing), "--inputs", str(missing))
    assert proc.returncode == 2 and proc.stdout == ""
    err = _error_of(proc)
    assert err["details"][0]["path"] == "asset"
    assert "No such file" in err["details"][0]["message"]
    # a directory where a file is expected
    proc = _cli("run", "line_send_push", "--inputs", str(tmp_path))
    assert proc.returncode == 2
    assert _error_of(proc)["details"][0]["path"] == "inputs"


def test_unusable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    proc = _cli("docs", "--out", str(blocker / "reference"))
    assert proc.returncode == 2
    err = _error_of(proc)
    assert str(blocker) in err["error"] and "check the path" in err["error"]
    assert "internal error" not in err["error"]


def test_bare_command_prints_usage_on_stderr_exit_2():
    proc = _cli()
    assert proc.returncode == 2
    assert proc.stdout == ""  # stdout is for results only
    assert proc.stderr.startswith("usage: line-connector")
    for command in ("run", "sandbox", "webhook", "docs", "list", "check"):
        assert command in proc.stderr


def test_help_shows_every_default():
    sandbox = _cli("sandbox", "--help").stdout
    for text in ("(default: 8090)", "(default: 127.0.0.1)", "(default: 0.0)", "(default: 35.0)",
                 "(default: 500,503,429,slow,reset,reset_after)"):
        assert text in " ".join(sandbox.split()), text
    webhook = " ".join(_cli("webhook", "--help").stdout.split())
    assert "(default: 8000)" in webhook and "(default: 127.0.0.1)" in webhook
    docs = " ".join(_cli("docs", "--help").stdout.split())
    assert "(default: docs/actions)" in docs
    run = " ".join(_cli("run", "--help").stdout.split())
    assert "default: the pack's 30 s" in run


def test_missing_asset_suggests_the_sandbox():
    proc = _cli("run", "line_send_push", stdin=json.dumps({"inputs": PUSH}))
    assert proc.returncode == 2
    err = _error_of(proc)
    assert "asset.token" in [d["path"] for d in err["details"]]
    assert "--sandbox" in err["error"] and err["error"].count("--sandbox") == 1
    # an asset missing a field: the same suggestion, once
    proc = _cli("run", "line_send_push", stdin=json.dumps({"asset": {"token": ""}, "inputs": PUSH}))
    assert proc.returncode == 2
    err = _error_of(proc)
    assert "asset.token" in [d["path"] for d in err["details"]]
    assert err["error"].count("--sandbox") == 1


def test_sandbox_with_foreign_credentials_explains_which_it_accepts():
    proc = _cli("run", "line_send_push", "--sandbox",
                stdin=json.dumps({"asset": {"token": "my-real-channel-token"}, "inputs": PUSH}))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["status_code"] == 401  # the vendor's answer is kept
    err = _error_of(proc)
    assert "the sandbox accepts only its own credentials" in err["error"]
    assert "leave the credential fields out" in err["error"] and "line-connector sandbox" in err["error"]
    assert "my-real-channel-token" not in proc.stderr + proc.stdout


def test_run_at_a_terminal_says_it_reads_stdin():
    """stdin is a real pseudo-terminal: the notice comes before any input,
    and the JSON typed then (ended by Ctrl-D) is used."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "run", "line_send_push", "--sandbox"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        ready, _, _ = select.select([proc.stderr], [], [], 30)
        assert ready, "no notice on stderr within 30 s"
        notice = proc.stderr.readline().decode()
        assert "reading" in notice and "stdin" in notice and "Ctrl-D" in notice
        os.write(master, json.dumps({"inputs": PUSH}).encode() + b"\n")
        time.sleep(0.2)
        os.write(master, b"\x04")  # Ctrl-D: end of input at the start of a line
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0, err
    assert json.loads(out)[0]["status_code"] == 200


def test_piped_stdin_gets_no_notice():
    proc = _cli("run", "line_send_push", "--sandbox", stdin=json.dumps({"inputs": PUSH}))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("command", [["sandbox"], ["webhook", "--secret-env", "LC_TEST_SECRET"]])
@pytest.mark.parametrize("host, why", [("999.1.1.1", "not an IP address"), ("a b", "not an IP address"),
                                       ("", "the host is empty"), (" ", "the host is empty")])
def test_bad_host_is_a_usage_error_naming_host(command, host, why):
    """Was: 999.1.1.1 and "a b" ended in "internal error: gaierror" (exit 1),
    and an empty host silently listened on every interface. None of these
    hosts needs a resolver to be refused: the test asks no DNS server."""
    proc = _cli(*command, "--host", host, "--port", "0", env={"LC_TEST_SECRET": "s3cret-value"}, timeout=30)
    assert proc.returncode == 2, proc.stderr
    err = _error_of(proc)
    assert err["details"][0]["path"] == "--host"
    assert why in err["error"] and repr(host) in err["error"] and "--host 127.0.0.1" in err["error"]
    assert proc.stdout == ""


def test_sandbox_refuses_an_ipv6_host_clearly():
    """The sandbox's URLs (and its demo assets') are IPv4 only: an IPv6 host is
    refused with the fix, not served at a URL no client can use."""
    proc = _cli("sandbox", "--host", "::1", "--port", "0", timeout=30)
    assert proc.returncode == 2
    err = _error_of(proc)
    assert err["details"][0]["path"] == "--host" and "IPv4 only; use --host 127.0.0.1" in err["error"]
    assert proc.stdout == ""


def test_a_host_that_stops_resolving_before_the_bind_is_still_named():
    """A name checked at parse time may fail to resolve at bind time: that
    gaierror is still exit 2 naming --host, not an internal error."""
    args = argparse.Namespace(port=8000, host="gone.invalid", command="webhook")
    err = cli._environment_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), args)
    assert err["details"][0]["path"] == "--host"
    assert "'gone.invalid'" in err["error"] and "--host 127.0.0.1" in err["error"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_sent_result_that_cannot_be_printed_goes_to_stderr_with_its_retry_key():
    """`... | line-connector run line_send_push --sandbox > /dev/full`: the push
    is delivered, then stdout fails. Was: exit 1 "internal error: OSError" and
    the retry_key lost, so a resend could deliver twice. Now the JSON error
    on stderr carries the whole result; exit 1, no traceback."""
    stdin = json.dumps({"inputs": PUSH})
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*CLI, "run", "line_send_push", "--sandbox"], input=stdin, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    doc = json.loads(proc.stderr)
    assert "could not be written to stdout" in doc["error"] and doc["details"][0]["path"] == "stdout"
    [result] = doc["result"]
    assert result["ok"] is True and result["status_code"] == 200
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", result["retry_key"])


def test_a_closed_stdout_still_hands_over_the_result():
    """stdout closed before the run (sys.stdout is None in the child): the
    same JSON error with the result on stderr, exit 1."""
    stdin = json.dumps({"inputs": PUSH})
    proc = subprocess.run(["sh", "-c", 'exec "$0" -m line_connector.cli run line_send_push --sandbox 1>&-',
                           sys.executable], input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stderr)
    assert doc["details"][0]["path"] == "stdout" and doc["result"][0]["retry_key"]
