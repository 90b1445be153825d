"""No-loss / no-duplicate soak: many LINE pushes, LINE multicasts and NXCloud
sends against the sandbox while it injects faults (500, 503, 429, slow
answers past the client's read timeout, connections dropped before or after
processing, answers whose body drips a byte at a time past the action's
deadline, endless bodies), then every send is checked against what the
sandbox delivered.

A LINE send whose result says ``"delivery": "unknown"`` is resent, as a
careful caller would, with the same ``retry_key`` (up to ``--resends``
times): LINE (and the sandbox) drop the repeat, so the resend must settle the
outcome without delivering twice. NXCloud has no retry key: its unknown
outcomes stay reported as unknown.

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

The client uses the pack's real retry policies with a short read timeout, a
short deadline and backoff sleeps scaled down (``--time-scale``) so
thousands of sends fit in minutes.
"""
import argparse
import io
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))

from line_connector import ActionError, run_action  # noqa: E402
from line_connector.http import HttpClient  # noqa: E402
from line_connector.sandbox import FAULT_KINDS, FaultPlan, Sandbox  # noqa: E402

KINDS = FAULT_KINDS  # 500, 503, 429, slow, reset, reset_after, drip, endless
TEXT = [{"type": "text", "text": "soak"}]


def _results(fn):
    try:
        return fn()
    except ActionError as exc:
        return exc.output


def run_soak(sends=600, rate=0.2, seed=7, workers=8, read_timeout=0.25, slow_seconds=0.5,
             time_scale=0.02, multicast_size=25, deadline=2.0, drip_interval=0.03, endless_seconds=5.0,
             resends=5):
    """Returns (table dict, problems list). A dripped answer (~100 bytes at
    ``drip_interval``) and an endless one both outlast ``deadline``."""
    n_push = sends // 2
    n_multicast = max(1, sends // 10)
    n_nx = sends - n_push - n_multicast
    faults = FaultPlan(rate=rate, kinds=KINDS, seed=seed, slow_seconds=slow_seconds,
                       drip_interval=drip_interval, endless_seconds=endless_seconds)
    client = HttpClient(timeout=(2.0, read_timeout), sleep=lambda s: time.sleep(s * time_scale),
                        pool_size=workers)
    units = []          # (vendor, recipients, result, an earlier answer left the outcome unknown)
    lock = threading.Lock()
    resent = [0]

    with Sandbox(faults=faults, log_stream=io.StringIO()) as sb:  # its JSON log lines: not the point here
        line_asset = sb.demo_assets()["line_channel_access_token"]
        nx_asset = sb.demo_assets()["nxcloud"]

        def run(name, asset, inputs):
            return _results(lambda: run_action(name, asset, inputs, client=client, sandbox=sb, deadline=deadline))

        def run_line(name, inputs):
            """Send; while the outcome is not settled, resend the same call
            with the same retry key (LINE drops what it already has). Not
            settled: an answer says "unknown", or a 2xx whose body could not
            be read, or a failure after an earlier answer said "unknown" (a
            500 on the resend says nothing about the first send).
            Returns (results, whether any answer said unknown)."""
            inputs = dict(inputs, retry_key=str(uuid.uuid4()))
            out = run(name, line_asset, inputs)
            ever_unknown = False
            for _ in range(resends):
                ever_unknown = ever_unknown or any(_unsettled(r) for r in out)
                if all(r["ok"] for r in out) or not (ever_unknown or any(_unsettled(r) for r in out)):
                    break
                with lock:
                    resent[0] += 1
                out = run(name, line_asset, inputs)
            ever_unknown = ever_unknown or any(_unsettled(r) for r in out)
            return out, ever_unknown

        def push(i):
            to = "U%032x" % (0x10000000 + i)
            out, unknown = run_line("line_send_push", {"to": to, "messages": TEXT})
            with lock:
                units.append(("line", [to], out[0], unknown))

        def multicast(i):
            users = ["U%032x" % (0x20000000 + i * multicast_size + j) for j in range(multicast_size)]
            out, unknown = run_line("line_send_multicast", {"to": users, "messages": TEXT})
            with lock:
                units.extend(("line", r["recipients"], r, unknown) for r in out)

        def nx(i):
            to = "U%032x" % (0x30000000 + i)
            out = run("nxcloud_send_line", nx_asset, {
                "tenant_id": 1, "appkey": "soak", "to": to, "type": 1, "content": "soak"})
            with lock:
                units.append(("nxcloud", [to], out[0], False))

        jobs = [(push, i) for i in range(n_push)] + [(multicast, i) for i in range(n_multicast)] + \
               [(nx, i) for i in range(n_nx)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for f in [pool.submit(fn, i) for fn, i in jobs]:
                f.result()
        elapsed = time.monotonic() - started
        time.sleep(slow_seconds + 0.2)  # let delayed answers finish before counting

        injected = dict(faults.injected)
        table = {"sends": len(units), "faults injected": sum(injected.values()),
                 "of which drip": injected.get("drip", 0), "of which endless": injected.get("endless", 0),
                 "retries": 0, "resent with the same retry_key": resent[0], "delivered": 0,
                 "of which 2xx with an unreadable answer": 0, "failed and reported": 0,
                 "of which outcome unknown": 0, "duplicates": 0, "lost": 0, "misreported": 0}
        problems = []
        for vendor, recipients, result, ever_unknown in units:
            table["retries"] += result.get("attempts", 1) - 1
            if vendor == "line":
                counts = [sb.line.per_recipient[u] for u in recipients]
                if result.get("retry_key") and sb.line.per_retry_key[result["retry_key"]] > 1:
                    counts.append(sb.line.per_retry_key[result["retry_key"]])
            else:
                counts = [sb.nxcloud.per_recipient[("line", u)] for u in recipients]
            most, least = max(counts), min(counts)
            unknown = result.get("delivery") == "unknown" or ever_unknown
            # a 2xx is the vendor saying "accepted", even when its body was
            # too big or too slow to read (the result keeps the status and a note)
            accepted_unreadable = not result["ok"] and 200 <= result["status_code"] < 300 and result.get("note")
            if most > 1:
                verdict = "duplicates"
            elif result["ok"] or accepted_unreadable:
                verdict = "delivered" if least == 1 else "lost"
                if accepted_unreadable and verdict == "delivered":
                    table["of which 2xx with an unreadable answer"] += 1
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


def _unsettled(result):
    """An answer that leaves a LINE send's outcome open to a careful caller."""
    return result.get("delivery") == "unknown" or (not result["ok"] and 200 <= result["status_code"] < 300)


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
