"""line-connector benchmarks: each prints the pack's figure, a baseline
measured in the same run on the same machine, and their ratio (medians).

Everything runs against the pack's sandbox, served by a separate process on
127.0.0.1 so client and server do not share an interpreter.

    bash bench/run.sh [--quick]

``--json PATH`` writes every row (figures, ratio, goal) for
``bench/report.py``, which prints the Markdown table and checks the goals.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable
BIN = os.path.dirname(PY)
USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
TEXT = [{"type": "text", "text": "benchmark"}]
# The stand-in keeps only the last deliveries: the sandbox records each one
# for tests (a dict per Super Message phone), and millions of records made
# its garbage collector pause for tens of ms at random, in whichever side's
# run was going: the same answers, without that history.
SERVER = """
import collections, gc, sys
from line_connector.sandbox import Sandbox
sb = Sandbox(port=0).start()
sb.line.deliveries = collections.deque(maxlen=1000)
sb.nxcloud.deliveries = collections.deque(maxlen=1000)
gc.freeze()
print(sb.url, flush=True)
sys.stdin.read()
"""
ROWS = []


def row(key, name, pack, baseline, unit, goal=None, figure=None, shown=None, cpu=None):
    """One benchmark row. ``goal``: ("<=" or ">=", limit) on ``figure``
    (default: the ratio pack / baseline); None when only reported.
    ``cpu``: (pack, baseline) CPU seconds of the client processes, whose
    ratio moves much less than wall time when the machine is shared."""
    ratio = pack / baseline if baseline else float("nan")
    figure = ratio if figure is None else figure
    cpu_ratio = cpu[0] / cpu[1] if cpu and cpu[1] else None
    ROWS.append({"key": key, "name": name, "pack": pack, "baseline": baseline, "unit": unit, "ratio": ratio,
                 "figure": figure, "shown": shown or "%.2fx" % ratio, "goal": list(goal) if goal else None,
                 "cpu_ratio": cpu_ratio})
    print("%-46s pack %10.2f %-4s baseline %10.2f %-4s ratio %6.2fx%s%s" % (
        name, pack, unit, baseline, unit, ratio, ("   goal %s %g" % tuple(goal)) if goal else "",
        ("   CPU-time ratio %.2fx" % cpu_ratio) if cpu_ratio else ""), flush=True)


def child(code, *args, env=None):
    """Run python code in a fresh process; it prints one JSON line."""
    out = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(cmds, n):
    """Median seconds of each command, run in turn (a, b, a, b...), so load
    that comes and goes on a shared machine hits every side alike."""
    import resource

    times, cpus = [[] for _ in cmds], [[] for _ in cmds]
    for _ in range(n):
        for cmd, out, cpu in zip(cmds, times, cpus):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            out.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if proc.returncode != 0:
                raise RuntimeError("%s failed: %s %s" % (cmd[:3], proc.stdout[-500:], proc.stderr[-500:]))
    interleaved.cpu = [statistics.median(c) for c in cpus]
    return [statistics.median(t) for t in times]


def bench_cold(url, token, n, tmp):
    asset, inputs = os.path.join(tmp, "asset.json"), os.path.join(tmp, "inputs.json")
    json.dump({"url": url, "token": token}, open(asset, "w"))
    json.dump({"to": USER, "messages": TEXT}, open(inputs, "w"))
    cli = [os.path.join(BIN, "line-connector"), "run", "line_send_push", "--asset", asset, "--inputs", inputs]
    oneshot = ("import json, uuid, requests; requests.post(%r, data=json.dumps({'to': %r, 'messages': %r}), "
               "headers={'Authorization': 'Bearer %s', 'Content-Type': 'application/json', "
               "'X-Line-Retry-Key': str(uuid.uuid4())}, timeout=(5, 30)).raise_for_status()"
               % (url + "/v2/bot/message/push", USER, TEXT, token))
    interleaved([cli, [PY, "-c", oneshot]], 1)  # warm the page cache and the verdict caches
    pack, base = interleaved([cli, [PY, "-c", oneshot]], n)
    cold_cpu = interleaved.cpu
    row("cold", "cold: `line-connector run line_send_push` vs a requests one-shot", pack * 1000, base * 1000, "ms",
        ("<=", 1.3), cpu=cold_cpu)
    sdk = ("from linebot.v3.messaging import Configuration, ApiClient, MessagingApi, PushMessageRequest, "
           "TextMessage\nwith ApiClient(Configuration(host=%r, access_token=%r)) as c:\n"
           "    MessagingApi(c).push_message(PushMessageRequest(to=%r, messages=[TextMessage(text='benchmark')]))"
           % (url, token, USER))
    if subprocess.run([PY, "-c", "import linebot.v3"], capture_output=True).returncode == 0:
        pack, sdk_time = interleaved([cli, [PY, "-c", sdk]], max(3, n // 2))
        sdk_cpu = interleaved.cpu
        row("sdk", "cold: CLI push vs the official line-bot-sdk v3 push", pack * 1000, sdk_time * 1000, "ms",
            shown="%.1fx faster" % (sdk_time / pack), cpu=sdk_cpu)
    else:
        print("cold start vs line-bot-sdk: skipped (line-bot-sdk is not installed)")


WARM = """
import json, sys, time, uuid, statistics
import requests
from line_connector import run_action
url, token, calls, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
asset = {"url": url, "token": token}
inputs = {"to": %r, "messages": %r}
for _ in range(50):
    run_action("line_send_push", asset, inputs)
session = requests.Session()
body = json.dumps(inputs).encode()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
for _ in range(50):
    session.post(url + "/v2/bot/message/push", data=body, headers=dict(headers, **{"X-Line-Retry-Key": str(uuid.uuid4())}), timeout=(5, 30))
for _ in range(50):
    run_action("line_send_push", asset, dict(inputs, retry_key=str(uuid.uuid4())))
pack, keyed, base = [], [], []
cpu = {"pack": [], "keyed": [], "base": []}
block = 20  # small blocks taken in turn: load that comes and goes hits all three alike
for _ in range(reps * calls // block):
    t, c = time.perf_counter(), time.process_time()
    for _ in range(block):
        run_action("line_send_push", asset, inputs)
    pack.append((time.perf_counter() - t) / block)
    cpu["pack"].append((time.process_time() - c) / block)
    # the caller's own retry_key: the record made under it is on the measured path
    keys = [str(uuid.uuid4()) for _ in range(block)]
    t, c = time.perf_counter(), time.process_time()
    for key in keys:
        run_action("line_send_push", asset, dict(inputs, retry_key=key))
    keyed.append((time.perf_counter() - t) / block)
    cpu["keyed"].append((time.process_time() - c) / block)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(block):
        r = session.post(url + "/v2/bot/message/push", data=body, timeout=(5, 30),
                         headers=dict(headers, **{"X-Line-Retry-Key": str(uuid.uuid4())}))
        (r.status_code, r.reason, dict(r.headers), r.json())
    base.append((time.perf_counter() - t) / block)
    cpu["base"].append((time.process_time() - c) / block)
print(json.dumps({"pack": statistics.median(pack), "keyed": statistics.median(keyed),
                  "base": statistics.median(base), "cpu": {k: statistics.median(v) for k, v in cpu.items()}}))
""" % (USER, TEXT)

VALIDATE = """
import json, sys, time
from line_connector.validation import validate
msgs = [{"type": "text", "text": "hello"}, {"type": "sticker", "packageId": "446", "stickerId": "1988"},
        {"type": "image", "originalContentUrl": "https://example.com/a.jpg", "previewImageUrl": "https://example.com/a.jpg"},
        {"type": "template", "altText": "t", "template": {"type": "confirm", "text": "ok?", "actions": [
            {"type": "message", "label": "yes", "text": "yes"}, {"type": "message", "label": "no", "text": "no"}]}},
        {"type": "flex", "altText": "f", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical",
            "contents": [{"type": "text", "text": "hi"}]}}}]
inputs = {"to": %r, "messages": msgs}
n = int(sys.argv[1])
for _ in range(200):
    validate("line/send_push.input.json", inputs, "inputs", "inputs")
t = time.perf_counter()
for _ in range(n):
    validate("line/send_push.input.json", inputs, "inputs", "inputs")
print(json.dumps({"per_call": (time.perf_counter() - t) / n}))
""" % USER

#: the paced baseline's bucket (burst, refill per second): LINE's multicast
#: limit of 200 requests/s x rate_limit_factor 0.8, as the pack shapes it
PACED_BUCKET = (16.0, 144.0)
FANOUT = """
import hashlib, json, random, resource, sys, time, uuid
mode, kind, url, token, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
order = sys.argv[6] if len(sys.argv) > 6 else "shuffled"
import requests
if mode.startswith("pack"):
    # imports happen before the clock on both sides (the loop's requests above):
    # the runner and the engine it imports (``line_connector.run_action`` alone
    # imports nothing until called); what a process pays to import them is the
    # cold-start benchmark's figure. The action's own module, its schemas and
    # the manifest are loaded by the call, inside the clock.
    from line_connector.runner import run_action
workers = int(mode[len("pack"):] or 1) if mode.startswith("pack") else 1
# the paced loop: a plain token bucket holding the rate the pack must keep
# (LINE's multicast limit 200 requests/s x rate_limit_factor 0.8, SPEC 13),
# shaped like the pack's (a tenth of the second's share as burst, the rest
# refilled over the second; main() checks it against ratelimit.bucket_shape)
BURST, RATE = %r
tokens, stamp = BURST, time.monotonic()
ids = ["U%%032x" %% i for i in range(n)] if kind == "multicast" else [str(85290000000 + i) for i in range(n)]
# in no order by default, as a list exported from a CRM or a SIEM is: the
# pack's de-duplication has a fast path for a strictly ascending list, which
# the goal rows must not lean on ("sorted" is measured beside them, no goal)
if order == "shuffled":
    random.Random(22).shuffle(ids)
msgs = %r
t, c = time.perf_counter(), time.process_time()
if mode.startswith("pack"):
    if kind == "multicast":
        out = run_action("line_send_multicast", {"url": url, "token": token},
                         {"to": ids, "messages": msgs, "max_workers": workers})
    else:
        out = run_action("nxcloud_send_super_message", {"url": url, "super_message_url": url,
                         "access_key": "sandbox-nx-access-key", "access_secret": token},
                         {"appkey": "k", "phones": ids, "message": {"textMessage": {"text": "benchmark"}},
                          "max_workers": workers})
    assert all(r["ok"] for r in out), out[0]
else:
    session = requests.Session()
    out = []
    size = 500 if kind == "multicast" else 2000
    for i in range(0, len(ids), size):
        chunk = ids[i:i + size]
        if mode == "paced":
            now = time.monotonic()
            tokens = min(BURST, tokens + (now - stamp) * RATE)
            stamp = now
            if tokens < 1:
                time.sleep((1 - tokens) / RATE)
                now = time.monotonic()
                tokens = min(BURST, tokens + (now - stamp) * RATE)
                stamp = now
            tokens -= 1
        if kind == "multicast":
            body = json.dumps({"to": chunk, "messages": msgs}).encode()
            headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json",
                       "X-Line-Retry-Key": str(uuid.uuid4())}
            r = session.post(url + "/v2/bot/message/multicast", data=body, headers=headers, timeout=(5, 30))
        else:
            body = json.dumps({"appkey": "k", "phones": chunk, "message": {"textMessage": {"text": "benchmark"}}},
                              ensure_ascii=False, separators=(",", ":")).encode()
            ts = str(int(time.time() * 1000))
            sign = hashlib.md5(("accessKey=sandbox-nx-access-key&action=mt&bizType=8&ts=%%s&body=" %% ts).encode()
                               + body + ("&accessSecret=" + token).encode()).hexdigest()
            headers = {"Content-Type": "application/json", "accessKey": "sandbox-nx-access-key", "ts": ts,
                       "bizType": "8", "action": "mt", "sign": sign}
            r = session.post(url + "/v1/message/mt", data=body, headers=headers, timeout=(5, 30))
        out.append({"status_code": r.status_code, "reason": r.reason, "response_headers": dict(r.headers),
                    "json_body": r.json(), "recipients": chunk})
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "cpu": time.process_time() - c, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "requests": len(out)}))
""" % (PACED_BUCKET, TEXT)


# The pack before issue 11's message rules (grapheme counting, per-context
# actions, cross-field rules): the baseline of the validation benchmark.
VALIDATION_BASELINE_REV = "500a4707740d965d82ab24108a5625cbbac2ab66"


def bench_file_creation(directory, n=200):
    """A property of the machine, not of the pack, reported next to the warm
    rows: the CPU time (mostly the kernel's) of creating one file in the
    state directory's file system, which a keyed warm push paid once for its
    retry-key record until those records moved into slots of the shared lock
    files (``state.table_records``; a record still gets a file of its own when
    its table page is full), against rewriting a file that exists. On the shared
    VM where this row was added it ranged from ~20 us to ~1 ms of CPU (ext4,
    varying minute to minute with other users' I/O), against ~7 us on tmpfs:
    when the warm rows move between runs, this row says whether the file
    system moved."""
    folder = tempfile.mkdtemp(dir=directory)
    try:
        c = time.process_time()
        for i in range(n):
            fd = os.open(os.path.join(folder, "e%d.json" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b'{"v":1}')
            os.close(fd)
        created = (time.process_time() - c) / n
        c = time.process_time()
        for i in range(n):
            fd = os.open(os.path.join(folder, "e%d.json" % i), os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b'{"v":1}')
            os.close(fd)
        rewritten = (time.process_time() - c) / n
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row("fs_create", "  machine: creating a file in the state directory (CPU; no goal) vs rewriting one",
        created * 1e6, rewritten * 1e6, "us")


def bench_validation(n, reps):
    """Validation of a push of 5 messages, against the same code and schemas
    at VALIDATION_BASELINE_REV (taken with `git archive`, read-only), run
    alternately in the same run so machine load hits both sides alike."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(["git", "-C", repo, "archive", "--format=tar", VALIDATION_BASELINE_REV,
                              "line_connector", "schemas", "connector.yaml"], capture_output=True)
    if archive.returncode != 0:
        val = child(VALIDATE, str(n))
        print("%-44s pack %10.2f us per push of 5 messages (baseline skipped: no git checkout)"
              % ("validation: input validation", val["per_call"] * 1e6))
        return
    with tempfile.TemporaryDirectory() as old:
        subprocess.run(["tar", "-x", "-C", old], input=archive.stdout, check=True)
        env = dict(os.environ, PYTHONPATH=old)  # the old package shadows the installed one
        pack, base = [], []
        for _ in range(reps):
            pack.append(child(VALIDATE, str(n))["per_call"])
            base.append(child(VALIDATE, str(n), env=env)["per_call"])
    row("validation", "validation: push of 5 messages vs before #11", statistics.median(pack) * 1e6,
        statistics.median(base) * 1e6, "us", ("<=", 1.2))


def bench_import(tmp):
    asset, inputs = os.path.join(tmp, "asset.json"), os.path.join(tmp, "inputs.json")
    proc = subprocess.run([PY, "-X", "importtime", "-m", "line_connector.cli", "run", "line_send_push", "--dry-run",
                           "--asset", asset, "--inputs", inputs], capture_output=True, text=True)
    top = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2][1:]
            if not name.startswith(" "):  # top-level imports only (nested ones are indented)
                top.append((int(parts[1]), name.strip()))
    top.sort(reverse=True)
    print("import: top-level contributors of `line-connector run` (cumulative ms):")
    for cum, name in top[:10]:
        print("    %8.1f  %s" % (cum / 1000, name))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the rows to this file (for bench/report.py)")
    args = parser.parse_args()
    from line_connector.ratelimit import bucket_shape
    assert PACED_BUCKET == bucket_shape(200, 1, 0.8), "the paced baseline must keep the pack's multicast rate"
    n_cold, warm_calls, reps = (5, 300, 3) if args.quick else (15, 2000, 5)
    server = subprocess.Popen([PY, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    token = "sandbox-channel-access-token"
    print("python %s, %s, server %s\n" % (sys.version.split()[0], sys.platform, url))
    state_dir = tempfile.mkdtemp(prefix="line-connector-bench-")
    # a cache directory of this run (retry-key records, the manifest verdict),
    # as a user's would be, not the benchmarking user's own
    state_env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=state_dir)
    os.environ["LINE_CONNECTOR_CACHE_DIR"] = state_dir
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([os.path.join(BIN, "line-connector"), "check"], capture_output=True)  # warm the verdict cache
            bench_cold(url, token, n_cold, tmp)
            warm = child(WARM, url, token, str(warm_calls), str(reps), env=state_env)
            row("warm", "warm: `run_action(\"line_send_push\")` vs `requests.Session.post`", warm["pack"] * 1e6,
                warm["base"] * 1e6, "us", ("<=", 1.2), cpu=(warm["cpu"]["pack"], warm["cpu"]["base"]))
            row("warm_key", "warm, with a caller's `retry_key` (its record made)", warm["keyed"] * 1e6,
                warm["base"] * 1e6, "us", ("<=", 1.2), cpu=(warm["cpu"]["keyed"], warm["cpu"]["base"]))
            bench_file_creation(state_dir)
            bench_validation(warm_calls, reps)
            for kind, n, reqs in (("multicast", 100000, 200), ("super", 100000, 50)):
                modes = ("loop", "paced", "pack", "pack4") if kind == "multicast" else ("loop", "pack", "pack4",
                                                                                           "loop-sorted", "pack-sorted")
                walls, mems, cpus = ({mode: [] for mode in modes} for _ in range(3))
                secret = token if kind == "multicast" else "sandbox-nx-access-secret"
                # a stand-in of its own per fan-out: the sandbox keeps every
                # delivery, and after the rows before (millions of them) its
                # pauses grew into the figures of whichever side was running
                fan_server = subprocess.Popen([PY, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              text=True)
                fan_url = fan_server.stdout.readline().strip()
                try:
                    # a Super Message round takes ~1.5 s, a multicast one ~6 s: the
                    # short runs are taken more often (their medians move more)
                    for _ in range(1 if args.quick else 5 if kind == "multicast" else 11):
                        for mode in modes:
                            how, order = (mode.split("-") + ["shuffled"])[:2]
                            res = child(FANOUT, how, kind, fan_url, secret, str(n), order)
                            assert res["requests"] == reqs, res
                            walls[mode].append(res["wall"])
                            cpus[mode].append(res["cpu"])
                            mems[mode].append(res["maxrss_kib"] / 1024)
                finally:
                    fan_server.stdin.close()
                    fan_server.wait(timeout=30)
                label = ("multicast to 100,000 IDs (200 requests)" if kind == "multicast"
                         else "Super Message to 100,000 phones (50 requests)")
                base = "paced" if kind == "multicast" else "loop"
                row(kind, "fan-out: %s vs a plain requests loop%s" % (
                    label, " paced at LINE's limit x 0.8" if base == "paced" else ""),
                    statistics.median(walls["pack"]), statistics.median(walls[base]), "s", ("<=", 1.1),
                    cpu=(statistics.median(cpus["pack"]), statistics.median(cpus[base])))
                if base == "paced":
                    row(kind + "_unpaced", "  same vs an unpaced loop (no goal; mostly LINE's limit)",
                        statistics.median(walls["pack"]), statistics.median(walls["loop"]), "s",
                        cpu=(statistics.median(cpus["pack"]), statistics.median(cpus["loop"])))
                row(kind + "4", "  same with max_workers=4 (no goal)", statistics.median(walls["pack4"]),
                    statistics.median(walls[base]), "s")
                if "pack-sorted" in walls:
                    row(kind + "_sorted", "  same, pack and loop both with the phones in ascending order (no goal)",
                        statistics.median(walls["pack-sorted"]), statistics.median(walls["loop-sorted"]), "s",
                        cpu=(statistics.median(cpus["pack-sorted"]), statistics.median(cpus["loop-sorted"])))
                pm, lm = statistics.median(mems["pack"]), statistics.median(mems["loop"])
                row(kind + "_mem", "  peak memory of the %s" % ("multicast" if kind == "multicast" else
                                                               "Super Message"), pm, lm, "MiB",
                    ("<=", 20.0) if kind == "multicast" else None, figure=pm - lm, shown="%+.1f MiB" % (pm - lm))
            json.dump({"url": url, "token": token}, open(os.path.join(tmp, "asset.json"), "w"))
            json.dump({"to": USER, "messages": TEXT}, open(os.path.join(tmp, "inputs.json"), "w"))
            bench_import(tmp)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        shutil.rmtree(state_dir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(ROWS, fh)


if __name__ == "__main__":
    main()
