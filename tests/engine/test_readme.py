"""The README's service, MCP and local-webhook sections run as pasted (issue 21).

Each section's shell blocks (fences marked ``sh``, ``bash``, ``shell`` or
unmarked) are joined in order into one script and run by one ``bash -e``,
as a newcomer pastes them into one terminal, in an empty directory (what a
fresh clone adds to it is only what the blocks write: configs, event files),
with this environment's ``line-connector`` and ``python3`` first on PATH.
The blocks start servers in the background on the 127.0.0.1 ports they
name; each section's last block stops them, and the test kills the script's
whole process group afterwards whatever happened, so nothing outlives it.

Slower than 10 s (about 20-40 s in all): the sections start real servers
(``serve --sandbox``, ``serve``, gunicorn, the sandbox, the MCP server, the
webhook receiver), which is what they document. The ports are the README's
own, fixed, because the blocks are run unchanged.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(REPO, "README.md")
SHELL_FENCES = ("", "sh", "bash", "shell")
SECTIONS = ("Service", "MCP server", "Receiving webhooks locally")


def sections(text):
    """{level-2 heading: its text up to the next level-2 heading}."""
    found, name, lines = {}, None, []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            if name is not None:
                found[name] = "\n".join(lines)
            name, lines = line[3:].strip(), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        found[name] = "\n".join(lines)
    return found


def shell_blocks(section):
    """The shell blocks of a section, in order (fence info ``sh``, ``bash``,
    ``shell`` or none; ``yaml``/``json`` blocks are files, not commands)."""
    return [m.group(2) for m in re.finditer(r"^```([A-Za-z]*)\n(.*?)^```$", section, re.S | re.M)
            if m.group(1) in SHELL_FENCES]


def _readme_sections():
    with open(README, encoding="utf-8") as fh:
        return sections(fh.read())


def _ports(script):
    return sorted({int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", script)} |
                  {int(p) for p in re.findall(r"--port (\d+)", script)})


def _free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is not "taken"
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _run_section(name, tmp_path, timeout=240):
    script = "\n".join(shell_blocks(_readme_sections()[name]))
    busy = [p for p in _ports(script) if not _free(p)]
    assert not busy, "ports the README's %r section uses are taken on this machine: %s" % (name, busy)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["LINE_CONNECTOR_CACHE_DIR"] = str(tmp_path / "cache")  # the user's cache stays untouched
    for var in ("LINE_CONNECTOR_STATE", "LINE_CONNECTOR_CONFIG"):
        env.pop(var, None)
    # files, not pipes: a server a failed block left in the background would hold a pipe
    # open, and reading it to its end would wait for that server instead of for the script
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        proc = subprocess.Popen(["bash", "-e", "-c", script], cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                                stdout=out_file, stderr=err_file, start_new_session=True)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # whatever the blocks left running
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        proc.wait()
    out, err = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if timed_out:
        err += "\n(timed out after %d s)" % timeout
    assert proc.returncode == 0 and not timed_out, "README section %r failed (exit %s):\n%s\n--- stderr ---\n%s" % (
        name, proc.returncode, out[-4000:], err[-4000:])
    leftover = [p for p in _ports(script) if not _free(p)]
    assert not leftover, "the section's own last block left servers on ports %s" % leftover
    return out, err


def test_each_section_has_shell_blocks_and_no_unrunnable_placeholders():
    found = _readme_sections()
    for name in SECTIONS:
        blocks = shell_blocks(found[name])
        assert blocks, name
        script = "\n".join(blocks)
        # as pasted: nothing to fill in, no host but loopback, no system path
        assert not re.search(r"<[a-z ]+>|\.\.\.(?!\w)|/etc/|/var/|0\.0\.0\.0|example\.", script), name
        assert "kill %1" in blocks[-1], "%s: the last block stops what the section started" % name


def test_service_section_runs_as_pasted(tmp_path):
    out, _err = _run_section("Service", tmp_path)
    # serve --sandbox's guide, then every curl answered 2xx (--fail-with-body), the
    # pushes delivered by the sandbox, and the signed test events handed over
    assert '"url": "http://127.0.0.1:8080"' in out
    assert out.count('"status_code": 200') >= 6
    assert out.count('"handed_over": 1') == 2
    # serve --workers 2: its /metrics counted the call that one of its workers served
    assert 'line_connector_requests_total{action="line_get_quota",outcome="ok"} 1.0' in out
    events = (tmp_path / "line-events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(events) == 1 and '"Hello from line-connector"' in events[0]


def test_mcp_section_runs_as_pasted(tmp_path):
    out, _err = _run_section("MCP server", tmp_path)
    assert re.search(r"^\d+ tools$", out, re.M)
    assert '"status_code": 200' in out and '"sentMessages"' in out


def test_local_webhook_section_runs_as_pasted(tmp_path):
    out, _err = _run_section("Receiving webhooks locally", tmp_path)
    assert '"status": 200' in out
    events = (tmp_path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(events) == 1 and '"Hello, bot"' in events[0]


def test_sections_parser_ignores_headings_inside_fences():
    text = "## A\n```sh\necho 1\n## not a heading\n```\n## B\n```yaml\nk: v\n```\n```\necho 2\n```\n"
    found = sections(text)
    assert sorted(found) == ["A", "B"]
    assert shell_blocks(found["A"]) == ["echo 1\n## not a heading\n"]
    assert shell_blocks(found["B"]) == ["echo 2\n"]
