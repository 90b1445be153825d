"""Many threads and many processes at once share tokens correctly: LINE
OAuth within a process, Sobot across processes, with no corrupted cache."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from helpers import TEXT
from line_connector import run_action
from line_connector.filecache import cache_dir


def test_threads_share_one_oauth_token(line_sandbox):
    asset = line_sandbox.demo_assets()["line_oauth2_client_credentials"]
    users = ["U%032x" % i for i in range(48)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        outs = list(pool.map(lambda u: run_action("line_send_push", asset, {"to": u, "messages": TEXT}), users))
    assert all(out[0]["ok"] for out in outs)
    assert line_sandbox.line.token_requests == 1
    assert all(line_sandbox.line.per_recipient[u] == 1 for u in users)


def test_threads_share_one_sobot_token(line_sandbox):
    asset = line_sandbox.demo_assets()["sobot"]
    with ThreadPoolExecutor(max_workers=12) as pool:
        outs = list(pool.map(lambda i: run_action("sobot_query_task_list", asset, {"page_no": 1 + i % 3}), range(36)))
    assert all(out[0]["ok"] for out in outs)
    assert line_sandbox.sobot.token_requests == 1


def test_processes_share_one_sobot_token_and_the_cache_stays_whole(line_sandbox):
    payload = json.dumps({"asset": line_sandbox.demo_assets()["sobot"], "inputs": {"page_size": 3}})
    procs = [subprocess.Popen([sys.executable, "-m", "line_connector.cli", "run", "sobot_query_send_records"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    for p in procs:
        p.stdin.write(payload)
        p.stdin.close()
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)[0]["json_body"]["ret_code"] == "000000"
    assert line_sandbox.sobot.token_requests == 1
    token_dir = os.path.join(cache_dir(), "state", "sobot-token")
    entries = [f for f in os.listdir(token_dir) if f.endswith(".json")]
    with open(os.path.join(token_dir, entries[0]), encoding="utf-8") as fh:
        data = json.load(fh)
    assert len(entries) == 1 and data["value"]["token"] == line_sandbox.sobot.token
