"""``line-connector``: the command line over the runner.

JSON in, JSON out, exit 0 / 1 / 2 (SPEC section 4). No traceback ever
reaches the user: anything unexpected becomes a one-line JSON error on stderr.
"""
import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _print_json(obj, stream):
    stream.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    stream.flush()


def _error(message, details=(), stream=None):
    _print_json({"error": message, "details": list(details)}, stream or sys.stderr)


def _read_json(path, label):
    from .errors import InputError

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        raise InputError("cannot read %s" % label,
                         [{"path": label, "message": "cannot be read: %s" % exc.strerror}]) from None
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError("%s is not valid JSON" % label,
                         [{"path": label, "message": "is not valid JSON: %s" % exc}]) from None


def _payload(args):
    from .errors import InputError

    if args.asset or args.inputs:
        asset = _read_json(args.asset, "asset") if args.asset else {}
        inputs = _read_json(args.inputs, "inputs") if args.inputs else {}
        return asset, inputs
    if sys.stdin is None or sys.stdin.closed:
        return {}, {}
    doc = _read_json("-", "stdin")
    if not isinstance(doc, dict):
        raise InputError("stdin must be a JSON object",
                         [{"path": "stdin", "message": "must be a JSON object {\"asset\": {...}, \"inputs\": {...}}"}])
    unknown = sorted(set(doc) - {"asset", "inputs"})
    if unknown:
        raise InputError("unknown top-level field in stdin",
                         [{"path": unknown[0], "message": "is not an allowed field (use \"asset\" and \"inputs\")"}])
    return doc.get("asset", {}), doc.get("inputs", {})


def cmd_list(args):
    from .manifest import manifest

    actions = manifest().actions.values()
    if args.json:
        _print_json([{"name": a.name, "title": a.title, "assets": list(a.assets)} for a in actions], sys.stdout)
    else:
        width = max(len(a.name) for a in actions)
        for a in actions:
            sys.stdout.write("%s  %s\n" % (a.name.ljust(width), a.title))
    return EXIT_OK


def _progress_printer(args):
    """A progress line on stderr for multi-request sends: when stderr is a
    terminal, or with --progress; silent otherwise (stderr stays JSON)."""
    if not (args.progress or (sys.stderr.isatty() and not os.environ.get("CI"))):
        return None

    def show(done, total):
        sys.stderr.write("\rline-connector: %d/%d requests sent" % (done, total))
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def cmd_run(args):
    from .errors import ActionError, InputError
    from .runner import run_action

    sandbox = None
    try:
        asset, inputs = _payload(args)
        if args.sandbox:
            from .sandbox import Sandbox

            sandbox = Sandbox().start()
        timeout = None
        if args.timeout is not None:
            timeout = (min(args.timeout, 10.0), args.timeout)
        output = run_action(args.action, asset, inputs, dry_run=args.dry_run, timeout=timeout,
                            sandbox=sandbox, progress=_progress_printer(args))
    except InputError as exc:
        _print_json(exc.to_json(), sys.stderr)
        return EXIT_INPUT
    except ActionError as exc:
        _print_json(exc.output, sys.stdout)
        _error(exc.message)
        return EXIT_FAILED
    finally:
        if sandbox is not None:
            sandbox.stop()
    _print_json(output, sys.stdout)
    return EXIT_OK


def cmd_sandbox(args):
    import signal

    from .sandbox import FaultPlan, Sandbox

    try:
        kinds = tuple(k for k in args.faults.split(",") if k)
        faults = FaultPlan(rate=args.fault_rate, kinds=kinds, seed=args.seed, slow_seconds=args.slow_seconds)
    except ValueError as exc:
        _error("invalid fault settings", [{"path": "--faults/--fault-rate", "message": str(exc)}])
        return EXIT_INPUT
    sandbox = Sandbox(host=args.host, port=args.port, faults=faults).start()
    _print_json({"url": sandbox.url, "assets": sandbox.demo_assets()}, sys.stdout)
    sys.stderr.write("sandbox listening on %s (Ctrl-C to stop)\n" % sandbox.url)
    signal.signal(signal.SIGTERM, lambda *_: sandbox.stop())
    try:
        sandbox.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return EXIT_OK


def cmd_webhook(args):
    """A local receiver for playbook development: verifies each POST and
    prints one JSON event per line on stdout."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from .actions.line.webhook import parse

    secret = os.environ.get(args.secret_env)
    if not secret:
        _error("no channel secret", [{"path": "--secret-env",
                                      "message": "environment variable %s is not set or empty" % args.secret_env}])
        return EXIT_INPUT
    out_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 10 * 1024 * 1024)).decode("utf-8", "replace")
            output, ok = parse(body, self.headers.get("x-line-signature"), secret)
            with out_lock:
                if ok:
                    for event in output["events"]:
                        sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
                else:
                    _error(output["error"])
            reply = b"{}" if ok else json.dumps({"message": output["error"]}).encode("utf-8")
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write("webhook receiver listening on http://%s:%d/ (Ctrl-C to stop)\n"
                     % (args.host, server.server_address[1]))
    sys.stderr.flush()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def cmd_check(args):
    from .manifest import manifest

    m = manifest()
    m.check_all()
    sys.stdout.write("manifest OK: %d actions, %d assets\n" % (len(m.actions), len(m.asset_names)))
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as the JSON error object, exit 2."""

    def error(self, message):
        _error("invalid command line: %s" % message,
               [{"path": "argv", "message": message}])
        sys.exit(EXIT_INPUT)


def cmd_docs(args):
    from . import docs

    if args.check:
        bad = docs.stale(args.out)
        if bad:
            _error("docs are out of date; run `line-connector docs`",
                   [{"path": os.path.join(args.out, b), "message": "differs from the manifest and schemas"} for b in bad])
            return EXIT_FAILED
        sys.stdout.write("docs up to date\n")
        return EXIT_OK
    for rel in docs.write(args.out):
        sys.stdout.write(os.path.join(args.out, rel) + "\n")
    return EXIT_OK


def build_parser():
    parser = _Parser(
        prog="line-connector",
        description="Run LINE, NXCloud and Sobot actions: JSON in, JSON out.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="list the actions and their titles")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run an action",
                       description="Run ACTION. Reads {\"asset\": {...}, \"inputs\": {...}} on stdin "
                                   "unless --asset/--inputs are given; prints the result JSON on stdout. "
                                   "Exit 0 success, 1 refused/unreachable, 2 invalid input (nothing sent).")
    p.add_argument("action")
    p.add_argument("--asset", metavar="FILE", help="asset JSON file ('-' for stdin)")
    p.add_argument("--inputs", metavar="FILE", help="inputs JSON file ('-' for stdin)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request(s) that would be sent, secrets masked; send nothing")
    p.add_argument("--sandbox", action="store_true",
                   help="start the embedded sandbox and point the asset at it")
    p.add_argument("--progress", action="store_true",
                   help="print a progress line on stderr for multi-request sends (default: only on a terminal)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="read timeout per request (connect timeout is at most 10 s)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sandbox", help="serve the local emulator of LINE, NXCloud and Sobot",
                       description="Serve the emulator on 127.0.0.1. GET /_sandbox/stats shows what it counted.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--fault-rate", type=float, default=0.0, metavar="R", help="share of requests to fail (0-1)")
    p.add_argument("--faults", default="500,503,429,slow,reset,reset_after", metavar="KINDS",
                   help="comma-separated fault kinds: 500, 503, 429, slow (answer after the client gave up), "
                        "reset (drop before processing), reset_after (drop after processing)")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible faults")
    p.add_argument("--slow-seconds", type=float, default=35.0, metavar="S",
                   help="delay of a 'slow' answer (default 35 s: past the pack's 30 s read timeout)")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("webhook", help="receive LINE webhooks locally: verify and print one JSON event per line")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--secret-env", required=True, metavar="VAR",
                   help="environment variable holding the channel secret (never pass it on the command line)")
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("docs", help="generate the action reference (docs/actions/) from the manifest and schemas")
    p.add_argument("--out", default="docs", metavar="DIR")
    p.add_argument("--check", action="store_true", help="exit 1 if the docs are out of date")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("check", help="load every action class, schema and asset; fail loudly on a mismatch")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv=None):
    import warnings

    from .errors import ManifestError

    # stderr carries JSON only; verify_ssl: false is the asset's explicit choice
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ManifestError as exc:
        _error("connector pack is inconsistent: %s" % exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_FAILED
    except Exception as exc:  # a bug: report it as JSON, never as a traceback
        if os.environ.get("LINE_CONNECTOR_DEBUG"):  # opt-in, for developers of the pack
            import traceback

            traceback.print_exc()
        _error("internal error: %s (set LINE_CONNECTOR_DEBUG=1 for a traceback)" % type(exc).__name__)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
