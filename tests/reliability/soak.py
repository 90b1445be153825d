"""No-loss / no-duplicate soak: many LINE pushes, LINE multicasts and NXCloud
sends against the sandbox while it injects faults (500, 503, 429, slow
answers past the client's read timeout, connections dropped before or after
processing), then every send is checked against what the sandbox delivered.

For each send exactly one of these must hold:
  delivered   reported ok, and delivered exactly once
  failed      reported failed with a reason: a definite failure (then it was
              not delivered) or "delivery: unknown" (then it was delivered at
              most once, and the report says it cannot know)
and never:
  duplicate   delivered more than once
  lost        reported ok but not delivered
  misreported reported as definitely not delivered, but delivered

    python tests/reliability/soak.py --sends 5000 --rate 0.2 --seed 7

The client uses the pack's real retry policies with a short read timeout
and backoff sleeps scaled down (``--time-scale``) so thousands of sends fit
in minutes.
"""
import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))

from line_connector import ActionError, run_action  # noqa: E402
from line_connector.http import HttpClient  # noqa: E402
from line_connector.sandbox import FaultPlan, Sandbox  # noqa: E402

KINDS = ("500", "503", "429", "slow", "reset", "reset_after")
TEXT = [{"type": "text", "text": "soak"}]


def _results(fn):
    try:
        return fn()
    except ActionError as exc:
        return exc.output


def run_soak(sends=600, rate=0.2, seed=7, workers=8, read_timeout=0.25, slow_seconds=0.5,
             time_scale=0.02, multicast_size=25):
    """Returns (table dict, problems list)."""
    n_push = sends // 2
    n_multicast = max(1, sends // 10)
    n_nx = sends - n_push - n_multicast
    faults = FaultPlan(rate=rate, kinds=KINDS, seed=seed, slow_seconds=slow_seconds)
    client = HttpClient(timeout=(2.0, read_timeout), sleep=lambda s: time.sleep(s * time_scale),
                        pool_size=workers)
    units = []          # (vendor, recipients, result)
    lock = threading.Lock()

    with Sandbox(faults=faults) as sb:
        line_asset = sb.demo_assets()["line_channel_access_token"]
        nx_asset = sb.demo_assets()["nxcloud"]

        def push(i):
            to = "U%032x" % (0x10000000 + i)
            out = _results(lambda: run_action("line_send_push", line_asset, {"to": to, "messages": TEXT},
                                              client=client))
            with lock:
                units.append(("line", [to], out[0]))

        def multicast(i):
            users = ["U%032x" % (0x20000000 + i * multicast_size + j) for j in range(multicast_size)]
            out = _results(lambda: run_action("line_send_multicast", line_asset, {"to": users, "messages": TEXT},
                                              client=client))
            with lock:
                units.extend(("line", r["recipients"], r) for r in out)

        def nx(i):
            to = "U%032x" % (0x30000000 + i)
            out = _results(lambda: run_action("nxcloud_send_line", nx_asset, {
                "tenant_id": 1, "appkey": "soak", "to": to, "type": 1, "content": "soak"}, client=client))
            with lock:
                units.append(("nxcloud", [to], out[0]))

        jobs = [(push, i) for i in range(n_push)] + [(multicast, i) for i in range(n_multicast)] + \
               [(nx, i) for i in range(n_nx)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(fn, i) for fn, i in jobs]:
                f.result()
        elapsed = time.monotonic() - started
        time.sleep(slow_seconds + 0.2)  # let delayed answers finish before counting

        table = {"sends": len(units), "faults injected": sum(faults.injected.values()),
                 "retries": 0, "delivered": 0, "failed and reported": 0, "of which outcome unknown": 0,
                 "duplicates": 0, "lost": 0, "misreported": 0}
        problems = []
        for vendor, recipients, result in units:
            table["retries"] += result.get("attempts", 1) - 1
            if vendor == "line":
                counts = [sb.line.per_recipient[u] for u in recipients]
                if result.get("retry_key") and sb.line.per_retry_key[result["retry_key"]] > 1:
                    counts.append(sb.line.per_retry_key[result["retry_key"]])
            else:
                counts = [sb.nxcloud.per_recipient[("line", u)] for u in recipients]
            most, least = max(counts), min(counts)
            unknown = result.get("delivery") == "unknown"
            if most > 1:
                verdict = "duplicates"
            elif result["ok"]:
                verdict = "delivered" if least == 1 else "lost"
            elif not result.get("note") and result["status_code"] < 400:
                verdict = "misreported"  # a failure with no reason
            elif unknown:
                verdict = "failed and reported"
                table["of which outcome unknown"] += 1
            else:
                verdict = "failed and reported" if most == 0 else "misreported"
            table[verdict] += 1
            if verdict in ("duplicates", "lost", "misreported"):
                problems.append((verdict, vendor, recipients[:3], {k: result.get(k) for k in (
                    "status_code", "reason", "attempts", "delivery", "note", "retry_key")}))
        table["seconds"] = round(elapsed, 1)
        return table, problems


def format_table(table):
    rows = [(k, str(v)) for k, v in table.items()]
    width = max(len(k) for k, _ in rows)
    lines = ["| %s | %s |" % ("measure".ljust(width), "value"), "|%s|%s|" % ("-" * (width + 2), "-------")]
    lines += ["| %s | %s |" % (k.ljust(width), v) for k, v in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--time-scale", type=float, default=0.02)
    args = parser.parse_args(argv)
    table, problems = run_soak(sends=args.sends, rate=args.rate, seed=args.seed, workers=args.workers,
                               time_scale=args.time_scale)
    print("soak: %d sends, fault rate %.0f%%, seed %d" % (args.sends, args.rate * 100, args.seed))
    print(format_table(table))
    for p in problems[:20]:
        print("PROBLEM", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
