"""Sobot actions against ``responses``: signing, the shared token, queries,
paging and ret_code handling."""
import json
import os
import stat
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from line_connector import ActionError, InputError, run_action, state
from line_connector.actions.sobot.token import NAMESPACE, SobotToken, sign
from line_connector.filecache import cache_dir
from line_connector.http import HttpClient
from line_connector.redaction import Redactor

BASE = "https://sg.sobot.com"
ASSET = {"appid": "app-1", "app_key": "sb-Canary-Secret-77"}
TOKEN_URL = BASE + "/api/get_token"
TASKS_URL = BASE + "/chat-set/api/line/query_task_list"
RECORDS_URL = BASE + "/chat-set/api/line/send_record_list"
MEDIA_URL = BASE + "/chat-line/api/line/get_media_content"


def token_reply(token):
    return {"item": {"token": token, "expires_in": "86400"}, "ret_code": "000000", "ret_msg": "操作成功"}


def page(items, page_no, page_count):
    return {"items": items, "page_no": page_no, "page_size": len(items), "page_count": page_count,
            "total_count": 99, "ret_code": "000000", "ret_msg": "操作成功"}


def run(name, inputs):
    return run_action(name, ASSET, inputs, client=HttpClient(sleep=lambda s: None))


def test_published_sign_vector():
    assert sign("1", "1569397773", "2") == "258eec3118705112b2c53dc8043d4d34"


@responses.activate
def test_get_token_request_and_masking():
    responses.get(TOKEN_URL, json=token_reply("tok-4ac37cb2e9c740dba4b7"))
    out = run("sobot_get_token", {})
    query = dict(parse_qsl(urlsplit(responses.calls[0].request.url).query))
    assert query["appid"] == "app-1" and len(query["create_time"]) == 10 and query["create_time"].isdigit()
    assert query["sign"] == sign("app-1", query["create_time"], ASSET["app_key"])
    assert out["token"] == "***" and out["cached"] is False and out["expires_in"] > 86000
    text = json.dumps(out)
    assert "tok-4ac37cb2e9c740dba4b7" not in text and ASSET["app_key"] not in text
    assert out["requests"][0]["json_body"]["item"]["token"] == "***"


@responses.activate
def test_the_token_is_shared_and_only_revealed_on_request():
    responses.get(TOKEN_URL, json=token_reply("tok-first-0001"))
    responses.get(TOKEN_URL, json=token_reply("tok-second-0002"))
    first = run("sobot_get_token", {})
    again = run("sobot_get_token", {"reveal_token": True})
    assert first["cached"] is False and again["cached"] is True and again["requests"] == []
    assert again["token"] == "tok-first-0001"
    forced = run("sobot_get_token", {"force_refresh": True, "reveal_token": True})
    assert forced["token"] == "tok-second-0002" and len(responses.calls) == 2


def token_dir():
    return os.path.join(cache_dir(), "state", "sobot-token")


def entry_paths(asset=ASSET, url=BASE):
    """(entry file, lock file) of an asset's token in the file state store."""
    auth = SobotToken(url, asset["appid"], asset["app_key"], Redactor())
    base = os.path.join(token_dir(), state.key_hash(NAMESPACE, auth._entry))
    return base + ".json", base + ".lock"


@responses.activate
def test_store_files_are_private_even_under_umask_000_and_never_hold_the_app_key():
    responses.get(TOKEN_URL, json=token_reply("tok-cache-0003"))
    old = os.umask(0)
    try:
        run("sobot_get_token", {})
    finally:
        os.umask(old)
    path, lock = entry_paths()
    for d in (cache_dir(), os.path.join(cache_dir(), "state"), token_dir()):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    for f in (path, lock):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    text = open(path, encoding="utf-8").read()
    assert "tok-cache-0003" in text and ASSET["app_key"] not in text and "app-1" not in text
    assert [f for f in os.listdir(token_dir()) if f.startswith(".tmp-")] == []


def test_existing_loose_permissions_are_tightened(tmp_path):
    os.makedirs(os.path.join(cache_dir(), "state", "sobot-token"))
    os.chmod(os.path.join(cache_dir(), "state"), 0o777)
    os.chmod(token_dir(), 0o755)
    store = state.store()
    store.put(NAMESPACE, "k", {"token": "x", "expires_at": 1e12}, 60)
    assert stat.S_IMODE(os.stat(os.path.join(cache_dir(), "state")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(token_dir()).st_mode) == 0o700


BAD_ENTRIES = [
    "[]", "null", "not json", '{"v": 1}', "\u0000\u0001", "{" * 100000,
    '{"v":1,"k":"%(k)s","exp":NaN,"value":{"token":"tok-stale","expires_at":1e12}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":"tok-stale"}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"tok-stale"}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"tok-stale","expires_at":null}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"tok-stale","expires_at":"soon"}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"tok-stale","expires_at":true}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":["tok-stale"],"expires_at":1e12}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"tok stale\\n","expires_at":1e12}}',
    '{"v":1,"k":"%(k)s","exp":1e12,"value":{"token":"","expires_at":1e12}}',
    # a valid entry of another key copied over this one's file: never used
    '{"v":1,"k":"%(other)s","exp":1e12,"value":{"token":"tok-stale","expires_at":1e12}}',
]


@pytest.mark.parametrize("bad", BAD_ENTRIES)
@responses.activate
def test_a_bad_cache_entry_is_dropped_never_crashes_never_used(bad):
    responses.get(TOKEN_URL, json=token_reply("tok-good-0010"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    path, _ = entry_paths()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    khash = os.path.basename(path)[:-5]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(bad % {"k": khash, "other": "0" * 64} if "%(" in bad else bad)
    (result,) = run("sobot_query_task_list", {})
    assert result["ok"]
    sent = [c.request.headers.get("token") for c in responses.calls if c.request.url == TASKS_URL]
    assert sent == ["tok-good-0010"]
    assert state.store().get(NAMESPACE, SobotToken(BASE, "app-1", ASSET["app_key"], Redactor())._entry)["token"] \
        == "tok-good-0010"


@pytest.mark.parametrize("expires_in,low,high", [
    (None, 86000, 86400), ("NaN", 86000, 86400), ("1e308", 86000, 86400), (1e308, 86000, 86400),
    ("-5", 0, 1), (-1e308, 0, 1), ("abc", 86000, 86400), (True, 86000, 86400), ({"x": 1}, 86000, 86400),
    (3600, 3000, 3600),
])
@responses.activate
def test_expires_in_is_clamped(expires_in, low, high):
    """Sobot documents tokens valid 24 h (expires_in 86400):
    https://www.sobot.com/developerdocs/ (get_token); anything absurd is clamped."""
    reply = token_reply("tok-exp-0011")
    reply["item"]["expires_in"] = expires_in
    responses.get(TOKEN_URL, json=reply)
    out = run("sobot_get_token", {})
    assert low <= out["expires_in"] <= high
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("token", ["tok-with\nnewline", "tok with space", "tok-\x7f", "tok-ü", "", 42,
                                   "x" * 5000])
@responses.activate
def test_a_token_that_cannot_travel_in_a_header_is_a_failure_not_a_crash(token):
    responses.get(TOKEN_URL, json={"item": {"token": token, "expires_in": 86400}, "ret_code": "000000"})
    responses.post(TASKS_URL, json=page([], 1, 1))
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {})
    (result,) = exc.value.output
    assert result["ok"] is False and ("cannot be used" in result["note"] or "get_token failed" in result["note"])
    assert not any(c.request.url == TASKS_URL for c in responses.calls)
    path, _ = entry_paths()
    assert not os.path.exists(path)
    if isinstance(token, str) and len(token) > 3:
        assert token not in json.dumps(exc.value.output)


@responses.activate
def test_a_symlink_at_the_entry_path_is_never_followed(tmp_path):
    responses.get(TOKEN_URL, json=token_reply("tok-real-0012"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    path, _ = entry_paths()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    target = tmp_path / "elsewhere.json"
    khash = os.path.basename(path)[:-5]
    planted = json.dumps({"v": 1, "k": khash, "exp": 1e12, "value": {"token": "tok-planted", "expires_at": 1e12}})
    target.write_text(planted)
    os.symlink(target, path)
    (result,) = run("sobot_query_task_list", {})
    assert result["ok"]
    assert [c.request.headers["token"] for c in responses.calls if c.request.url == TASKS_URL] == ["tok-real-0012"]
    assert target.read_text() == planted           # written past the link, never through it
    assert not os.path.islink(path) and "tok-real-0012" in open(path).read()


@responses.activate
def test_a_symlink_at_the_lock_path_is_never_followed(tmp_path):
    responses.get(TOKEN_URL, json=token_reply("tok-lock-0013"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    _, lock = entry_paths()
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    target = tmp_path / "victim.txt"
    target.write_text("precious")
    os.chmod(target, 0o644)
    os.symlink(target, lock)
    (result,) = run("sobot_query_task_list", {})
    assert result["ok"]
    assert target.read_text() == "precious" and stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert not os.path.islink(lock)


@responses.activate
def test_a_symlinked_state_directory_degrades_to_unshared_with_a_note(tmp_path):
    responses.get(TOKEN_URL, json=token_reply("tok-dir-0014"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    os.makedirs(cache_dir())
    (tmp_path / "attacker").mkdir()
    os.symlink(tmp_path / "attacker", os.path.join(cache_dir(), "state"))
    (result,) = run("sobot_query_task_list", {})
    assert result["ok"] and "not shared with other processes" in result["note"]
    assert os.listdir(tmp_path / "attacker") == []


@responses.activate
def test_an_unusable_cache_directory_degrades_to_unshared_with_a_note(tmp_path, monkeypatch):
    responses.get(TOKEN_URL, json=token_reply("tok-ro-0015"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(blocker / "cache"))  # parent is a file: ENOTDIR
    (result,) = run("sobot_query_task_list", {})
    assert result["ok"] and "state directory" in result["note"] and "this process only" in result["note"]
    (again,) = run("sobot_query_task_list", {})     # the in-process token is still shared within the process
    assert again["ok"] and len([c for c in responses.calls if c.request.url.startswith(TOKEN_URL)]) == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
@responses.activate
def test_a_read_only_cache_directory_degrades_to_unshared_with_a_note():
    responses.get(TOKEN_URL, json=token_reply("tok-ro-0016"))
    responses.post(TASKS_URL, json=page([], 1, 1))
    os.makedirs(cache_dir(), mode=0o500)
    try:
        (result,) = run("sobot_query_task_list", {})
    finally:
        os.chmod(cache_dir(), 0o700)
    assert result["ok"] and "this process only" in result["note"]


@responses.activate
def test_a_held_lock_ends_within_the_deadline_with_a_failure_result():
    """Another process holding this asset's lock (a slow token URL) makes the
    action fail after the bounded wait, with nothing sent, never hang."""
    responses.post(TASKS_URL, json=page([], 1, 1))
    auth = SobotToken(BASE, "app-1", ASSET["app_key"], Redactor())
    started = time.monotonic()
    with state.store().lock(NAMESPACE, auth._entry, 5):
        with pytest.raises(ActionError) as exc:
            run_action("sobot_query_task_list", ASSET, {}, client=HttpClient(sleep=lambda s: None), deadline=2)
    assert time.monotonic() - started < 2 + 10  # the deadline plus a generous margin
    (result,) = exc.value.output
    assert result["delivery"] == "not sent" and "lock" in result["note"] and len(responses.calls) == 0


@responses.activate
def test_queries_send_the_token_header_and_the_filters():
    responses.get(TOKEN_URL, json=token_reply("tok-q-0004"))
    responses.post(RECORDS_URL, json=page([{"messageid": "1"}], 1, 1))
    inputs = {"send_start_time": 1714295033250, "send_end_time": 1714295099999, "messageid": "111",
              "message_status": "2", "taskid": "t1", "task_name": "测试", "send_agentid": "a1", "sender": "s1",
              "recipient": "r1", "subjectid": "12345678", "page_no": 2, "page_size": 100}
    (result,) = run("sobot_query_send_records", inputs)
    sent = responses.calls[1].request
    assert sent.headers["token"] == "tok-q-0004" and json.loads(sent.body) == inputs
    assert result["ok"] and result["json_body"]["items"] == [{"messageid": "1"}]


@responses.activate
def test_media_content_gives_the_url_even_from_sobots_loose_example():
    responses.get(TOKEN_URL, json=token_reply("tok-m-0005"))
    responses.get(MEDIA_URL, json={"item": "https://sg.sobot.com/chatres/x/a.png", "ret_code": "000000"})
    (result,) = run("sobot_get_media_content", {"messageid": "1501597916"})
    assert result["media_url"] == "https://sg.sobot.com/chatres/x/a.png"
    query = dict(parse_qsl(urlsplit(responses.calls[1].request.url).query))
    assert query == {"appid": "app-1", "messageid": "1501597916"}
    loose = '{\n  "item": {\n    "https://sg.sobot.com/chatres/c72/017a.png"\n  },\n  "ret_code": "000000"\n}'
    responses.get(MEDIA_URL, body=loose)
    responses.replace(responses.GET, MEDIA_URL, body=loose)
    (result,) = run("sobot_get_media_content", {"messageid": "1501597916"})
    assert result["ok"] and result["media_url"] == "https://sg.sobot.com/chatres/c72/017a.png"
    assert result["json_body"] is None and result["raw_body"] == loose


@responses.activate
def test_parameter_error_is_exit_1_with_the_vendor_message():
    responses.get(TOKEN_URL, json=token_reply("tok-p-0006"))
    responses.post(TASKS_URL, json={"ret_code": "999994", "ret_msg": "参数异常,请检查"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {"task_name": "x"})
    (result,) = exc.value.output
    assert result["vendor_code"] == "999994" and "parameter error" in result["note"] and "参数异常" in result["note"]


@responses.activate
def test_all_pages_merges_items_and_is_bounded():
    responses.get(TOKEN_URL, json=token_reply("tok-a-0007"))
    for n in range(1, 5):
        responses.post(TASKS_URL, json=page([{"taskid": "t%d" % n}], n, 4))
    out = run("sobot_query_task_list", {"all_pages": True})
    assert [json.loads(c.request.body)["page_no"] for c in responses.calls[1:]] == [1, 2, 3, 4]
    assert all("all_pages" not in json.loads(c.request.body) for c in responses.calls[1:])
    assert len(out) == 4 and out[-1]["all_items"] == [{"taskid": "t%d" % n} for n in range(1, 5)]
    assert out[-1]["pages_fetched"] == 4

    responses.reset()
    for n in range(1, 5):
        responses.post(TASKS_URL, json=page([{"taskid": "t%d" % n}], n, 4))
    out = run("sobot_query_task_list", {"all_pages": True, "max_pages": 2})
    assert len(out) == 2 and "stopped after max_pages=2 of 4" in out[-1]["note"]


@responses.activate
def test_rejected_token_is_refetched_once_not_in_a_loop():
    responses.get(TOKEN_URL, json=token_reply("tok-old-0008"))
    responses.get(TOKEN_URL, json=token_reply("tok-new-0009"))
    responses.post(TASKS_URL, json={"ret_code": "900002", "ret_msg": "token 已失效,请重新获取"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {})
    token_calls = [c for c in responses.calls if c.request.url.startswith(TOKEN_URL)]
    task_calls = [c.request.headers["token"] for c in responses.calls if c.request.url == TASKS_URL]
    assert len(token_calls) == 2 and task_calls == ["tok-old-0008", "tok-new-0009"]
    assert exc.value.output[0]["vendor_code"] == "900002"


@responses.activate
def test_failed_token_request_is_reported():
    responses.get(TOKEN_URL, json={"ret_code": "999994", "ret_msg": "参数异常,请检查"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {})
    (result,) = exc.value.output
    assert result["json_body"]["ret_code"] == "999994" and "get_token failed" in result["note"]
    assert not any(c.request.url == TASKS_URL for c in responses.calls)


@pytest.mark.parametrize("action,inputs,path", [
    ("sobot_query_task_list", {"page_size": 101}, "inputs.page_size"),
    ("sobot_query_task_list", {"page_no": 0}, "inputs.page_no"),
    ("sobot_query_task_list", {"task_start_time": 1714295033}, "inputs.task_start_time"),
    ("sobot_query_task_list", {"max_pages": 1000}, "inputs.max_pages"),
    ("sobot_query_send_records", {"message_status": "3"}, "inputs.message_status"),
    ("sobot_query_send_records", {"message_status": 2}, "inputs.message_status"),
    ("sobot_query_send_records", {"recipients": "r"}, "inputs.recipients"),
    ("sobot_get_media_content", {}, "inputs.messageid"),
    ("sobot_get_token", {"reveal_token": "yes"}, "inputs.reveal_token"),
])
@responses.activate
def test_bad_inputs_name_the_field_and_send_nothing(action, inputs, path):
    with pytest.raises(InputError) as exc:
        run(action, inputs)
    assert path in [d["path"] for d in exc.value.details]
    assert len(responses.calls) == 0


class _TenantServer:
    """A Sobot-like server on 127.0.0.1 whose token URL hangs for the appid
    "slow" until released: the stand-in for one tenant's slow token URL."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.release = threading.Event()
        self.slow_arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, obj):
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                query = dict(parse_qsl(urlsplit(self.path).query))
                if query.get("appid") == "slow":
                    outer.slow_arrived.set()
                    outer.release.wait(60)
                self._json(token_reply("tok-%s" % query.get("appid")))

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._json(page([{"tenant": (self.headers.get("token") or "")[4:]}], 1, 1))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_one_slow_tenant_never_blocks_the_others():
    """Five processes, five tenants; tenant "slow" hangs inside its token
    fetch (holding its lock). The other four finish while it still hangs:
    locks are per asset (issue 12 measured them queueing 16-75 s)."""
    import subprocess
    import sys

    server = _TenantServer()
    try:
        def start(appid):
            payload = json.dumps({"asset": {"url": server.url, "appid": appid, "app_key": "k-" + appid},
                                  "inputs": {}})
            proc = subprocess.Popen([sys.executable, "-m", "line_connector.cli", "run", "sobot_query_task_list"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            proc.stdin.write(payload)
            proc.stdin.close()
            return proc

        slow = start("slow")
        assert server.slow_arrived.wait(30), "the slow tenant's token request never arrived"
        others = [start("tenant-%d" % i) for i in range(4)]
        for i, proc in enumerate(others):
            assert proc.wait(timeout=40) == 0, proc.stderr.read()
            (result,) = json.loads(proc.stdout.read())
            assert result["ok"] and result["json_body"]["items"] == [{"tenant": "tenant-%d" % i}]
        assert slow.poll() is None  # still waiting for its own token, holding only its own lock
        server.release.set()
        assert slow.wait(timeout=40) == 0, slow.stderr.read()
    finally:
        server.stop()
        for proc in [p for p in locals().get("others", []) + [locals().get("slow")] if p is not None]:
            if proc.poll() is None:
                proc.kill()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
