"""line_get_message_content and line_get_content_transcoding.

LINE's reference: "Get content" (developers.line.biz/en/reference/messaging-api/#get-content:
GET https://api-data.line.me/v2/bot/message/{messageId}/content, binary body
with its Content-Type; videos up to 200 MB) and "Verify video or audio
preparation status" (#verify-video-or-audio-preparation-status: status
processing, succeeded or failed). The promises checked here: content saved
atomically (never over a directory, never through a symbolic link, nothing
left by a cut download), streamed (a 100 MB download stays under 100 MiB of
peak memory, measured in a subprocess), base64 only up to 10 MiB.
"""
import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses

from helpers import TOKEN, TOKEN_ASSET, run_cli
from line_connector.actions.line import content
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import FaultPlan, Sandbox
from line_connector.sandbox.line_richmenu import (DEMO_IMAGE_MESSAGE_ID, DEMO_VIDEO_MESSAGE_ID, demo_photo)

DATA = "https://api-data.line.me"
MID = "510000000000000001"


def run(name, inputs, **kw):
    return run_action(name, TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None), **kw)


@pytest.fixture
def out(tmp_path):
    """An empty directory of its own (tmp_path also holds the test's cache)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


# ------------------------------------------------------------ sandbox
def test_download_saved_to_a_file_from_the_sandbox(sandbox, out):
    target = out / "photo.png"
    (result,) = run_action("line_get_message_content", {},
                           {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(target)}, sandbox=sandbox)
    data = demo_photo()
    assert result["ok"] and target.read_bytes() == data
    assert result["content_type"] == "image/png" and result["size"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and result["path"] == str(target)
    assert "content_base64" not in result and result["json_body"] is None
    assert os.listdir(out) == ["photo.png"]  # no temporary file left


def test_existing_file_is_replaced_only_with_overwrite_keeping_its_mode(sandbox, out):
    target = out / "photo.png"
    target.write_bytes(b"old")
    os.chmod(str(target), 0o644)
    with pytest.raises(InputError) as info:  # no silent replacement
        run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(target)},
                   sandbox=sandbox)
    assert info.value.details[0]["path"] == "inputs.save_to" and "overwrite" in info.value.details[0]["message"]
    assert target.read_bytes() == b"old"
    run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(target),
                                                "overwrite": True}, sandbox=sandbox)
    assert target.read_bytes() == demo_photo()
    assert os.stat(str(target)).st_mode & 0o777 == 0o644 and os.listdir(out) == ["photo.png"]


def test_download_returned_base64_without_save_to(sandbox):
    (result,) = run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID}, sandbox=sandbox)
    assert base64.b64decode(result["content_base64"]) == demo_photo()
    assert result["sha256"] == hashlib.sha256(demo_photo()).hexdigest() and "path" not in result


def test_unknown_message_is_404_and_nothing_saved(sandbox, out):
    with pytest.raises(ActionError) as info:
        run_action("line_get_message_content", {}, {"messageId": "999", "save_to": str(out / "x")},
                   sandbox=sandbox)
    (result,) = info.value.output
    assert result["status_code"] == 404 and result["json_body"] == {"message": "Not found"}
    assert "x-line-request-id" in {k.lower() for k in result["response_headers"]}
    assert os.listdir(out) == []


def test_transcoding_processing_then_succeeded(sandbox):
    first = run_action("line_get_content_transcoding", {}, {"messageId": DEMO_VIDEO_MESSAGE_ID}, sandbox=sandbox)
    second = run_action("line_get_content_transcoding", {}, {"messageId": DEMO_VIDEO_MESSAGE_ID}, sandbox=sandbox)
    assert [first[0]["json_body"], second[0]["json_body"]] == [{"status": "processing"}, {"status": "succeeded"}]
    with pytest.raises(ActionError) as info:
        run_action("line_get_content_transcoding", {}, {"messageId": "12"}, sandbox=sandbox)
    assert info.value.output[0]["status_code"] == 404


def test_cli_saves_and_refuses(out):
    code, out, _ = run_cli("run", "line_get_message_content", "--sandbox",
                           stdin={"inputs": {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(out / "a.png")}})
    assert code == 0 and json.loads(out)[0]["size"] == len(demo_photo())
    code, out, err = run_cli("run", "line_get_message_content", "--sandbox",
                             stdin={"inputs": {"messageId": "12ab"}})
    assert code == 2 and "Traceback" not in err
    assert any(d["path"] == "inputs.messageId" for d in json.loads(err or out)["details"])


def test_deadline_applies_to_a_dripped_download(out):
    """The sandbox's drip fault sends the body a byte a second: the action's
    deadline ends it, and the cut download leaves no file."""
    with Sandbox(faults=FaultPlan(script=["drip"], drip_interval=1.0)) as sb:
        with pytest.raises(ActionError) as info:
            run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID,
                                                        "save_to": str(out / "p.png")}, sandbox=sb, deadline=3)
    assert "deadline" in json.dumps(info.value.output)
    assert os.listdir(out) == []


# ------------------------------------------------------------ responses
@responses.activate
def test_request_shape_on_the_data_host(out):
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, body=b"\xff\xd8\xffdata",
                  content_type="image/jpeg", headers={"X-Line-Request-Id": "rid-9"})
    responses.add("GET", DATA + "/v2/bot/message/%s/content/transcoding" % MID, json={"status": "failed"})
    (result,) = run("line_get_message_content", {"messageId": MID, "save_to": str(out / "c.jpg")})
    assert result["ok"] and result["request_id"] == "rid-9" and result["content_type"] == "image/jpeg"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer " + TOKEN
    assert (out / "c.jpg").read_bytes() == b"\xff\xd8\xffdata"
    (result,) = run("line_get_content_transcoding", {"messageId": MID})
    assert result["json_body"] == {"status": "failed"}


@responses.activate
def test_refusal_keeps_status_headers_body(out):
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, status=401,
                  json={"message": "Authentication failed"}, headers={"X-Line-Request-Id": "r1"})
    with pytest.raises(ActionError) as info:
        run("line_get_message_content", {"messageId": MID, "save_to": str(out / "c")})
    (result,) = info.value.output
    assert result["status_code"] == 401 and result["json_body"] == {"message": "Authentication failed"}
    assert os.listdir(out) == []


@responses.activate
def test_base64_past_10_mib_fails_clearly():
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, body=b"v" * (10 * 1024 * 1024 + 1),
                  content_type="video/mp4")
    with pytest.raises(ActionError) as info:
        run("line_get_message_content", {"messageId": MID})
    (result,) = info.value.output
    assert not result["ok"] and "save_to" in result["note"] and "10 MiB" in result["note"]
    assert "content_base64" not in result and "raw_body" not in result


@responses.activate
def test_exactly_10_mib_is_returned_inline():
    body = b"v" * (10 * 1024 * 1024)
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, body=body, content_type="video/mp4")
    (result,) = run("line_get_message_content", {"messageId": MID})
    assert result["ok"] and result["size"] == len(body)
    assert base64.b64decode(result["content_base64"]) == body


# ------------------------------------------------------------ hostile targets
@pytest.mark.parametrize("kind", ["symlink", "directory", "missing_dir", "trailing_slash", "dangling_symlink"])
@responses.activate
def test_bad_save_to_refused_before_sending(out, kind):
    outside = out / "outside.txt"
    outside.write_bytes(b"keep")
    folder = out / "dir"
    folder.mkdir()
    if kind == "symlink":
        target = out / "link"
        os.symlink(str(outside), str(target))
    elif kind == "dangling_symlink":
        target = out / "dangling"
        os.symlink(str(out / "would-be-created"), str(target))
    elif kind == "directory":
        target = folder
    elif kind == "missing_dir":
        target = out / "nope" / "file.bin"
    else:
        target = str(folder) + "/"
    before = sorted(os.listdir(out)), sorted(os.listdir(folder))
    with pytest.raises(InputError) as info:
        run("line_get_message_content", {"messageId": MID, "save_to": str(target)})
    assert info.value.details[0]["path"] == "inputs.save_to"
    assert len(responses.calls) == 0
    assert (sorted(os.listdir(out)), sorted(os.listdir(folder))) == before
    assert outside.read_bytes() == b"keep" and not (out / "would-be-created").exists()


def test_bad_save_to_from_the_cli_is_exit_2(out):
    code, out, err = run_cli("run", "line_get_message_content", "--sandbox",
                             stdin={"inputs": {"messageId": MID, "save_to": str(out)}})
    assert code == 2 and "directory" in (out + err) and "Traceback" not in err


# ------------------------------------------------------------ a local server
class _Streamer(BaseHTTPRequestHandler):
    """Serves GET .../content: ``size`` bytes of a repeating pattern in 64 KiB
    writes; with ``cut_at`` it closes the connection after that many."""
    size = 0
    cut_at = None

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        piece = bytes(range(256)) * 256
        sent = 0
        limit = self.cut_at if self.cut_at is not None else self.size
        try:
            while sent < limit:
                n = min(len(piece), limit - sent)
                self.wfile.write(piece[:n])
                sent += n
        except OSError:
            return
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def _serve(size, cut_at=None):
    handler = type("H", (_Streamer,), {"size": size, "cut_at": cut_at})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def _expected_sha(size):
    piece = bytes(range(256)) * 256
    sha = hashlib.sha256()
    left = size
    while left:
        n = min(len(piece), left)
        sha.update(piece[:n])
        left -= n
    return sha.hexdigest()


def _failed_save(server, target):
    """Download from ``server`` to ``target``, expecting a failed result; stops the server."""
    try:
        asset = {"token": TOKEN, "data_url": "http://127.0.0.1:%d" % server.server_address[1]}
        with pytest.raises(ActionError) as info:
            run_action("line_get_message_content", asset, {"messageId": MID, "save_to": str(target)},
                       client=HttpClient(sleep=lambda s: None))
    finally:
        server.shutdown()
        server.server_close()
    (result,) = info.value.output
    return result


def test_download_cut_midway_leaves_no_partial_file(out):
    server = _serve(4 * 1024 * 1024, cut_at=1024 * 1024)
    result = _failed_save(server, out / "v.mp4")
    assert not result["ok"] and "nothing was saved" in result["note"]
    assert os.listdir(out) == []


def test_100_mb_download_keeps_peak_memory_under_100_mib(out):
    """The issue's "Done when": measured in a fresh process that imports the
    pack and downloads 100 MB from 127.0.0.1: its peak resident set (Linux:
    VmHWM, since ru_maxrss there also counts the pytest parent it was forked
    from; elsewhere ru_maxrss)."""
    size = 100 * 1024 * 1024
    server = _serve(size)
    target = out / "big.mp4"
    script = textwrap.dedent("""
        import json, resource, sys
        from line_connector import run_action
        out = run_action("line_get_message_content", {"token": "t", "data_url": sys.argv[1]},
                         {"messageId": "1", "save_to": sys.argv[2]}, deadline=120)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if sys.platform == "darwin":
            peak //= 1024
        try:  # Linux: ru_maxrss keeps the forking parent's peak across exec; VmHWM is this process's own
            with open("/proc/self/status") as fh:
                peak = int([l for l in fh if l.startswith("VmHWM:")][0].split()[1])
        except (OSError, IndexError, ValueError):
            pass
        print(json.dumps({"peak_kib": peak, "size": out[0]["size"], "sha256": out[0]["sha256"]}))
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", script, "http://127.0.0.1:%d" % server.server_address[1],
                               str(target)], capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["size"] == size and os.path.getsize(str(target)) == size
    assert report["sha256"] == _expected_sha(size)
    assert report["peak_kib"] < 100 * 1024, "peak RSS %d KiB" % report["peak_kib"]


def test_base64_mode_stops_reading_past_10_mib():
    """A 50 MB answer without save_to: the download stops after 10 MiB
    (the failure says to use save_to), it is not read to the end."""
    server = _serve(50 * 1024 * 1024)
    try:
        asset = {"token": TOKEN, "data_url": "http://127.0.0.1:%d" % server.server_address[1]}
        with pytest.raises(ActionError) as info:
            run_action("line_get_message_content", asset, {"messageId": MID},
                       client=HttpClient(sleep=lambda s: None))
    finally:
        server.shutdown()
        server.server_close()
    (result,) = info.value.output
    assert "save_to" in result["note"] and "content_base64" not in result



def test_dry_run_checks_the_target_and_sends_nothing(out):
    (described,) = run("line_get_message_content", {"messageId": MID, "save_to": str(out / "x.bin")}, dry_run=True)
    assert described["method"] == "GET" and described["url"] == DATA + "/v2/bot/message/%s/content" % MID
    with pytest.raises(InputError):
        run("line_get_message_content", {"messageId": MID, "save_to": str(out)}, dry_run=True)
    assert os.listdir(out) == []


def test_line_bot_sdk_v3_reads_content_from_the_sandbox(sandbox):
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApiBlob

    token = sandbox.demo_assets()["line_channel_access_token"]["token"]
    with ApiClient(Configuration(host=sandbox.url, access_token=token)) as client:
        blob = MessagingApiBlob(client)
        assert bytes(blob.get_message_content(DEMO_IMAGE_MESSAGE_ID)) == demo_photo()
        status = blob.get_message_content_transcoding_by_message_id(DEMO_IMAGE_MESSAGE_ID)
        assert status.status == "succeeded"


# ------------------------------------------------------------ review 15: unwritable target, disk bound
@responses.activate
def test_unwritable_save_to_directory_is_exit_2_before_sending(out):
    ro = out / "ro"
    ro.mkdir()
    os.chmod(str(ro), 0o500)
    try:
        if os.access(str(ro), os.W_OK):  # root ignores the mode
            pytest.skip("running as root: a read-only directory is still writable")
        with pytest.raises(InputError) as info:
            run("line_get_message_content", {"messageId": MID, "save_to": str(ro / "x.bin")})
    finally:
        os.chmod(str(ro), 0o700)
    assert info.value.details[0]["path"] == "inputs.save_to" and "cannot create" in info.value.details[0]["message"]
    assert len(responses.calls) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
@responses.activate
def test_proc_as_save_to_directory_is_exit_2_before_sending():
    with pytest.raises(InputError) as info:
        run("line_get_message_content", {"messageId": MID, "save_to": "/proc/x.bin"})
    assert info.value.details[0]["path"] == "inputs.save_to"
    assert len(responses.calls) == 0


@responses.activate
def test_failed_move_after_full_download_is_a_failed_result_not_internal_error(out, monkeypatch):
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, body=b"data", content_type="image/jpeg")

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(content.os, "replace", refuse)
    with pytest.raises(ActionError) as info:
        run("line_get_message_content", {"messageId": MID, "save_to": str(out / "c.jpg")})
    (result,) = info.value.output
    assert not result["ok"] and "not saved" in result["note"] and "Permission denied" in result["note"]
    assert "path" not in result and os.listdir(out) == []  # the temporary file removed too


def test_save_cap_is_256_mib_above_line_largest_video():
    # LINE: video messages up to 200 MB (developers.line.biz/en/reference/messaging-api/#video-message)
    assert content.MAX_SAVE == 256 * 1024 * 1024 > 200 * 1000 * 1000


def test_endless_body_stops_at_the_cap_and_leaves_nothing(out, monkeypatch):
    monkeypatch.setattr(content, "MAX_SAVE", 1024 * 1024)  # the same code path, a smaller cap
    server = _serve(4 * 1024 * 1024)
    result = _failed_save(server, out / "v.mp4")
    assert not result["ok"] and "larger than 1 MiB" in result["note"] and "nothing was saved" in result["note"]
    assert os.listdir(out) == []


@responses.activate
def test_content_download_asks_for_identity_encoding(out):
    responses.add("GET", DATA + "/v2/bot/message/%s/content" % MID, body=b"abc", content_type="image/jpeg")
    run("line_get_message_content", {"messageId": MID, "save_to": str(out / "c.jpg")})
    run("line_get_message_content", {"messageId": MID})
    assert [c.request.headers["Accept-Encoding"] for c in responses.calls] == ["identity", "identity"]


def _declared_result_keys():
    import jsonschema
    path = os.path.join(os.path.dirname(__file__), "..", "..", "schemas", "common", "http_results.json")
    with open(path) as fh:
        schema = json.load(fh)
    return schema, jsonschema


def test_download_results_are_documented_in_http_results(sandbox, out):
    """Every key a download result has is declared (and valid) in
    schemas/common/http_results.json, the output schema the docs show."""
    schema, jsonschema = _declared_result_keys()
    declared = set(schema["$defs"]["result"]["properties"])
    saved = run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID,
                                                        "save_to": str(out / "p.png")}, sandbox=sandbox)
    inline = run_action("line_get_message_content", {}, {"messageId": DEMO_IMAGE_MESSAGE_ID}, sandbox=sandbox)
    for output in (saved, inline):
        jsonschema.validate(output, schema)
        assert set(output[0]) <= declared, set(output[0]) - declared
