"""``line-connector``: the command line over the runner.

JSON in, JSON out, exit 0 / 1 / 2 (SPEC section 4). No traceback ever
reaches the user: anything unexpected becomes a one-line JSON error on stderr.
Help and error texts speak the user's words: no internal terms, no SPEC
section numbers.
"""
import argparse
import errno
import os
import sys

from . import jsontext
from .output import EXIT_FAILED, EXIT_INPUT, EXIT_OK, print_error as _error, print_json as _print_json


#: The most bytes read from one JSON input (--asset, --inputs, stdin). The
#: largest real input is a big recipient list: a 100,000-ID multicast is about
#: 3.5 MB (33-character IDs, quoted, comma-separated), plus messages of at most
#: a few hundred KB, so 20 MiB is several times any real send, and still a
#: bounded amount of memory for a path like /dev/zero or an endless pipe.
MAX_INPUT_BYTES = 20 * 1024 * 1024


def _read_json(path, label):
    """One strict JSON document (RFC 8259): UTF-8 bytes (a leading BOM is
    allowed), no NaN or Infinity, no number that overflows to Infinity.
    Nesting depth, lone surrogates (``"\\ud800"``) and integer ranges are
    checked by ``run_action``, which checks the Python API's values the same
    way; only nesting deep enough to stop the parser itself is caught here."""
    from .errors import InputError

    try:
        # at most one byte past the limit: enough to know the input is too large, so
        # /dev/zero or an endless pipe is refused at once instead of filling memory
        if path == "-":
            stream = getattr(sys.stdin, "buffer", None)  # bytes: decode strictly, whatever the locale
            data = stream.read(MAX_INPUT_BYTES + 1) if stream is not None else sys.stdin.read(MAX_INPUT_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise InputError("cannot read %s" % label,
                         [{"path": label, "message": "cannot be read: %s" % exc.strerror}]) from None
    if isinstance(data, bytes):
        if len(data) > MAX_INPUT_BYTES:
            return _parse_json(data, label)  # refused for its size before any decoding
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError("%s is not UTF-8" % label,
                             [{"path": label, "message": "is not valid UTF-8 (bad byte at offset %d); "
                                                         "JSON text must be UTF-8" % exc.start}]) from None
    return _parse_json(data, label)


def _parse_json(text, label, what="JSON"):
    """The one parser of every JSON input (a file, stdin, or --asset/--inputs
    given as text): the size limit, then strict JSON, each refusal naming the
    input. Blank text is ``{}`` (an empty stdin means no asset and no inputs)."""
    from .errors import InputError
    from .validation import MAX_DEPTH

    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_INPUT_BYTES:
        limit = "larger than %d MiB" % (MAX_INPUT_BYTES // (1024 * 1024))
        raise InputError("%s: %s" % (label, limit),
                         [{"path": label, "message": "is %s, the limit on one JSON input; split the "
                                                     "send into several runs" % limit}])
    if not text.strip():
        return {}
    try:
        return jsontext.loads(text)
    except RecursionError:
        raise InputError("%s is nested too deep" % label,
                         [{"path": label, "message": "is nested too deep (more than %d levels of objects "
                                                     "and arrays)" % MAX_DEPTH}]) from None
    except ValueError as exc:
        raise InputError("%s is not valid JSON" % label,
                         [{"path": label, "message": "is not valid %s: %s" % (what, exc)}]) from None


def _looks_like_json_text(value):
    """--asset/--inputs: JSON text when it starts like a JSON object or
    array (after blanks) and no file of that name exists; a file path (or
    '-' for stdin) otherwise. ``{`` and ``[`` never start a sensible path."""
    stripped = value.lstrip()
    return stripped[:1] in ("{", "[") and not os.path.exists(value)


def _option_json(value, label):
    """The JSON of --asset or --inputs: the text itself, or the file it names.
    A path that cannot be read says both ways it could have been given."""
    from .errors import InputError

    if _looks_like_json_text(value):
        return _parse_json(value, label, "JSON text")
    try:
        return _read_json(value, label)
    except InputError as exc:
        if exc.details and exc.details[0].get("message", "").startswith("cannot be read"):
            message = ("%s; --%s takes JSON text (e.g. --%s '{}') or the path of a JSON file ('-' for stdin)"
                       % (exc.details[0]["message"], label, label))
            raise InputError("cannot read --%s" % label, [{"path": label, "message": message}]) from None
        raise


def _payload(args):
    from .errors import InputError

    if args.asset or args.inputs:
        asset = _option_json(args.asset, "asset") if args.asset else {}
        inputs = _option_json(args.inputs, "inputs") if args.inputs else {}
        return asset, inputs
    if sys.stdin is None or sys.stdin.closed:
        return {}, {}
    doc = _read_json("-", "stdin")
    if not isinstance(doc, dict):
        raise InputError("stdin must be a JSON object",
                         [{"path": "stdin", "message": "must be a JSON object {\"asset\": {...}, \"inputs\": {...}}"}])
    unknown = sorted(set(doc) - {"asset", "inputs"})
    if unknown:
        name = unknown[0].encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate stays printable
        raise InputError("unknown top-level field in stdin",
                         [{"path": name, "message": "is not an allowed field (use \"asset\" and \"inputs\")"}])
    return doc.get("asset", {}), doc.get("inputs", {})


def cmd_list(args):
    from .describe import area_of, grouped, vendor_of
    from .manifest import manifest

    actions = manifest().actions.values()
    if args.json:  # manifest order, each with its vendor and area: a program groups as it likes
        _print_json([{"name": a.name, "title": a.title, "assets": list(a.assets), "vendor": vendor_of(a),
                      "area": area_of(a)} for a in actions], sys.stdout)
        return EXIT_OK
    width = max(len(a.name) for a in actions)
    for vendor, areas in grouped(actions):
        sys.stdout.write("%s\n" % vendor)
        for area, specs in areas:
            sys.stdout.write("  %s\n" % area)
            for a in specs:
                sys.stdout.write("    %s  %s\n" % (a.name.ljust(width), a.title))
    sys.stdout.write("\n`line-connector describe ACTION` shows an action's inputs and an example.\n")
    return EXIT_OK


def cmd_describe(args):
    from .describe import describe
    from .manifest import manifest

    spec = manifest().actions.get(args.action)
    if spec is None:
        return _unknown_action(args.action)
    if args.json:
        _print_json(describe(spec, as_json=True), sys.stdout)
    else:
        sys.stdout.write(describe(spec))
    return EXIT_OK


def _unknown_action(name):
    import difflib

    from .manifest import manifest

    names = list(manifest().actions)
    close = difflib.get_close_matches(name, names, n=3)
    hint = ("did you mean %s? " % " or ".join(close)) if close else ""
    _error("unknown action %r" % name, [{"path": "action", "message": "is not an action of this pack; %s"
                                                                      "`line-connector list` shows them all" % hint}])
    return EXIT_INPUT


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


def _has_status(output, status):
    """Whether any result in an action's output (a list of results, or an
    object holding one, like sobot_get_token's "requests") has this status."""
    if isinstance(output, dict):
        return any(_has_status(v, status) for v in output.values() if isinstance(v, (list, dict)))
    if isinstance(output, list):
        return any(isinstance(r, dict) and (r.get("status_code") == status or _has_status(r, status))
                   for r in output)
    return False


def cmd_run(args):
    from .errors import ActionError, InputError, InternalError
    from .runner import run_action

    sandbox = None
    if not (args.asset or args.inputs) and sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty():
        sys.stderr.write("line-connector: reading {\"asset\": ..., \"inputs\": ...} JSON from stdin "
                         "(Ctrl-D to end; --help for other ways)\n")
        sys.stderr.flush()
    try:
        asset, inputs = _payload(args)
        if args.sandbox:
            from .sandbox import Sandbox

            sandbox = Sandbox().start()
        timeout = None
        if args.timeout is not None:
            timeout = (min(args.timeout, 10.0), args.timeout)
        output = run_action(args.action, asset, inputs, dry_run=args.dry_run, timeout=timeout,
                            sandbox=sandbox, progress=_progress_printer(args), deadline=args.deadline)
    except InputError as exc:
        # (a missing asset is told to try --sandbox by the runner itself)
        _print_json(exc.to_json(), sys.stderr)
        return EXIT_INPUT
    except ActionError as exc:
        if not _print_result(exc.output):
            return EXIT_FAILED
        message = exc.message
        if args.sandbox and _has_status(exc.output, 401):
            message += ("; the sandbox accepts only its own credentials: leave the credential fields "
                        "out of the asset to use them (`line-connector sandbox` prints them)")
        _error(message)
        return EXIT_FAILED
    except InternalError as exc:  # a bug; its text was scrubbed by the runner, so it can be shown
        _error("%s; whether anything was sent is unknown" % exc.message)
        return EXIT_FAILED
    finally:
        if sandbox is not None:
            sandbox.stop()
    return EXIT_OK if _print_result(output) else EXIT_FAILED


def _print_result(output):
    """Print an action's result on stdout; True when it got there. When
    stdout cannot take it (a full disk, a closed pipe), the requests were
    still sent: the result, with every retry_key a resend needs to avoid a
    duplicate, goes to stderr inside the JSON error instead, and False
    (exit 1). stdout is then pointed at /dev/null, so the exit's own flush
    of the unwritten text cannot fail again with a second message."""
    try:
        _print_json(output, sys.stdout)
        return True
    except (OSError, ValueError, AttributeError) as exc:  # ValueError: stdout closed; AttributeError: None
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is closed"
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    message = ("the result could not be written to stdout (%s); the action ran, so its result is under "
               "\"result\" here: keep its retry_key values to resend without a duplicate" % cause)
    try:
        _print_json({"error": message, "details": [{"path": "stdout", "message": message}], "result": output},
                    sys.stderr)
    except (OSError, ValueError):  # stderr unusable too: nothing left to write to
        pass
    return False


def cmd_sandbox(args):
    import signal
    import socket

    from .sandbox import FaultPlan, Sandbox

    try:
        kinds = tuple(k for k in args.faults.split(",") if k)
        faults = FaultPlan(rate=args.fault_rate, kinds=kinds, seed=args.seed, slow_seconds=args.slow_seconds)
    except ValueError as exc:
        _error("invalid fault settings", [{"path": "--faults/--fault-rate", "message": str(exc)}])
        return EXIT_INPUT
    from .serverbase import address_family_for

    if address_family_for(args.host) == socket.AF_INET6:  # its URL and the demo assets' would need [brackets]
        message = ("the sandbox listens on IPv4 only; use --host 127.0.0.1 (or another IPv4 address of "
                   "this machine); IPv6 %s is supported by `line-connector webhook`" % args.host)
        _error(message, [{"path": "--host", "message": message}])
        return EXIT_INPUT
    sandbox = Sandbox(host=args.host, port=args.port, faults=faults, rate_limits=args.rate_limits).start()
    _print_json({"url": sandbox.url, "assets": sandbox.demo_assets()}, sys.stdout)
    sandbox.log("listening", message="sandbox listening on %s (Ctrl-C to stop)" % sandbox.url, url=sandbox.url)
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
    prints one JSON event per line on stdout (line_connector/webhook_server.py).
    A port that cannot be bound raises OSError (main() makes it exit 2)."""
    from .webhook_server import serve

    secret = _secret_from_env(args.secret_env)
    if secret is None:
        return EXIT_INPUT
    serve(secret, args.host, args.port)
    return EXIT_OK


_ENV_NAME = __import__("re").compile(r"[A-Z_][A-Z0-9_]{0,127}")


def _secret_from_env(name):
    """The channel secret held by environment variable ``name``, or None
    after printing why not. The name is shown only when it looks like a
    variable name (capitals, digits, _): a user who passed the secret itself
    (lower-case hex, as LINE issues them) must not see it echoed."""
    secret = os.environ.get(name) if name else None
    if secret:
        return secret
    if _ENV_NAME.fullmatch(name or ""):
        message = "environment variable %s is not set or empty" % name
    else:
        message = ("the environment variable it names is not set (the value given is not shown, in case it "
                   "is the secret itself); pass the variable's name, e.g. export LINE_CHANNEL_SECRET=... "
                   "then --secret-env LINE_CHANNEL_SECRET")
    _error("no channel secret", [{"path": "--secret-env", "message": message}])
    return None


def cmd_webhook_send(args):
    """POST one signed test event (a user's text message, fresh ids) to a
    webhook URL: `line-connector webhook` or the service's
    /v1/webhooks/ROUTE. Prints {"url", "status", "body"}; exit 0 on a 2xx,
    1 otherwise (nothing answered, or refused)."""
    from .webhook_server import send_test_event, test_event_body

    secret = _secret_from_env(args.secret_env)
    if secret is None:
        return EXIT_INPUT
    body = test_event_body(text=args.text)
    try:
        status, text = send_test_event(args.url, secret, body=body, timeout=args.timeout)
    except OSError as exc:
        _error("no answer from %s: %s" % (args.url, type(exc).__name__),
               [{"path": "url", "message": "did not answer (is the receiver running?)"}])
        return EXIT_FAILED
    try:
        answer = jsontext.loads(text)
    except ValueError:
        answer = text
    _print_json({"url": args.url, "status": status, "body": answer}, sys.stdout)
    return EXIT_OK if 200 <= status < 300 else EXIT_FAILED


def cmd_mcp(args):
    from .mcp_server import command

    return command(args)


def cmd_serve(args):
    if bool(args.sandbox) == bool(args.config):
        message = ("give --config FILE (your assets and API keys) or --sandbox (a try-out with no config), "
                   "not both" if args.sandbox else "give --config FILE, or --sandbox to try the service "
                   "with no config")
        _error("invalid command line: %s" % message, [{"path": "--config", "message": message}])
        return EXIT_INPUT
    from .service.app import command

    return command(args)


#: default ports: distinct, so a sandbox and a service run side by side as the README shows
SERVE_PORT, SANDBOX_PORT = 8080, 8090


def _version():
    """The installed distribution's version (the manifest's, from a checkout)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("line-connector")
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    from .manifest import manifest

    return str(manifest().raw.get("version", "unknown"))


class _VersionAction(argparse.Action):
    """``--version``, worked out only when asked: looking the installed
    version up imports ``importlib.metadata`` and scans the installed
    distributions (~20 ms), which every other command would pay for at
    parser build time otherwise (a fifth of a cold ``run``)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show the program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write("line-connector %s\n" % _version())
        sys.stdout.flush()
        parser.exit()


def _count_type(what, low, high):
    """An argparse type: an integer from ``low`` to ``high``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError("invalid %s %r: must be an integer from %d to %d"
                                             % (what, text, low, high))
        return value
    return parse


_threads = _count_type("thread count", 1, 256)  # --threads
_workers = _count_type("worker count", 1, 64)  # serve --workers


def cmd_check(args):
    from .manifest import manifest

    m = manifest()
    m.check_all()
    sys.stdout.write("manifest OK: %d actions, %d assets\n" % (len(m.actions), len(m.asset_names)))
    return EXIT_OK


class _HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default in --help (ports, docs dir, fault
    settings), so a newcomer never has to read the code to know what an
    omitted option means. Flags (False) and unset options (None) add nothing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and action.option_strings
                and not any(action.default is v for v in (None, False, argparse.SUPPRESS))):
            text += " (default: %(default)s)"
        return text


def _seconds(text):
    """argparse type for --timeout/--deadline: a positive, finite number of
    seconds. 0, negatives, nan and inf would disable or break the bound."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("invalid value %r: must be a positive, finite number of seconds" % text)
    return value


def _port(text):
    """argparse type for --port: an integer 0-65535 (0: any free port).
    Anything else is an exit-2 usage error naming the rule, not an
    OverflowError from the socket layer."""
    try:
        port = int(text)
    except ValueError:
        port = None
    if port is None or not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("invalid port %r: must be an integer from 0 to 65535 "
                                         "(0 picks a free port)" % text)
    return port


_HOST_FIX = ("use an IP address or a name of this machine, e.g. --host 127.0.0.1 "
             "(::1 for IPv6, 0.0.0.0 for every interface)")


def _host(text):
    """argparse type for --host: an IPv4 or IPv6 address, or a name this
    machine resolves. An empty host would silently listen on every
    interface, and a bad one (999.1.1.1, "a b") would surface from the
    socket layer as an internal gaierror; both are exit-2 usage errors here."""
    import socket

    from .serverbase import address_family_for

    try:
        address_family_for(text)
    except ValueError:
        raise argparse.ArgumentTypeError("invalid host %r: the host is empty; %s" % (text, _HOST_FIX))
    except (socket.gaierror, UnicodeError):
        raise argparse.ArgumentTypeError("invalid host %r: not an IP address or a name this machine resolves; %s"
                                         % (text, _HOST_FIX))
    return text


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as the JSON error object, exit 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # "argument --port: invalid port ..." -> path "--port", so the detail names the option
        path = "argv"
        if message.startswith("argument ") and ": " in message:
            path = message[len("argument "):].split(": ", 1)[0].split("/")[0]
        _error("invalid command line: %s" % message,
               [{"path": path, "message": message}])
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
        description="Run LINE, NXCloud and Sobot actions: JSON in, JSON out.",
        epilog="Start with `line-connector list`, then `line-connector describe ACTION`; "
               "`line-connector serve --sandbox` tries every action over HTTP with no account.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="list the actions by vendor and area")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("describe", help="show an action's inputs, assets and a runnable example",
                       description="Show ACTION's inputs (name, type, required, default, limits, description), "
                                   "the assets it accepts and an example that runs as pasted.")
    p.add_argument("action")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("run", help="run an action",
                       description="Run ACTION. Reads {\"asset\": {...}, \"inputs\": {...}} on stdin "
                                   "unless --asset/--inputs are given; prints the result JSON on stdout. "
                                   "Exit 0 success, 1 refused/unreachable, 2 invalid input (nothing sent). "
                                   "`line-connector run ACTION --help` also shows ACTION's inputs.")
    parser.run_parser = p
    p.add_argument("action")
    p.add_argument("--asset", metavar="JSON|FILE",
                   help="the asset: a JSON file ('-' for stdin) or JSON text; a file keeps its secrets out of "
                        "the process list, where other users of this machine could read a command line")
    p.add_argument("--inputs", metavar="JSON|FILE",
                   help="the inputs: JSON text (e.g. '{}') or a JSON file ('-' for stdin)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the request(s) that would be sent, secrets masked; send nothing")
    p.add_argument("--sandbox", action="store_true",
                   help="start the embedded sandbox and point the asset at it")
    p.add_argument("--progress", action="store_true",
                   help="print a progress line on stderr for multi-request sends (default: only on a terminal)")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="read timeout per request (default: the pack's 30 s; connect timeout is at most 10 s)")
    p.add_argument("--deadline", type=_seconds, metavar="SECONDS",
                   help="time the whole action may take, every request, retry and token fetch included; "
                        "the run ends within it whatever a server does (default: 60 s)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sandbox", help="serve the local emulator of LINE, NXCloud and Sobot",
                       description="Serve the emulator on 127.0.0.1. GET /_sandbox/stats shows what it counted "
                                   "(never a fault).")
    p.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=SANDBOX_PORT, help="port to listen on (0: any free port)")
    p.add_argument("--fault-rate", type=float, default=0.0, metavar="R", help="share of requests to fail (0-1)")
    p.add_argument("--faults", default="500,503,429,slow,reset,reset_after", metavar="KINDS",
                   help="comma-separated fault kinds: 500, 503, 429 (LINE's monthly limit), slow (answer after the client gave up), "
                        "reset (drop before processing), reset_after (drop after processing); on request also "
                        "drip (processed, then the body one byte a second) and endless (processed, then a "
                        "chunked body that never ends), 429_rate and 429_concurrency (LINE's rate and concurrency limits)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed for reproducible faults (default: a different sequence each run)")
    p.add_argument("--slow-seconds", type=float, default=35.0, metavar="S",
                   help="delay of a 'slow' answer, in seconds (35: past the pack's 30 s read timeout)")
    p.add_argument("--rate-limits", action="store_true",
                   help="enforce LINE's per-channel rate limits (429 past them, as LINE answers); "
                        "GET /_sandbox/stats shows each endpoint's busiest second")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("webhook", help="receive LINE webhooks locally: verify and print one JSON event per line")
    p.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (0: any free port)")
    p.add_argument("--secret-env", required=True, metavar="VAR",
                   help="name of the environment variable holding the channel secret (never pass the "
                        "secret itself on the command line)")
    p.set_defaults(func=cmd_webhook)

    p = sub.add_parser("webhook-send", help="send one signed test event to a webhook URL",
                       description="POST one LINE-shaped webhook (a user's text message, fresh ids) signed "
                                   "with the channel secret, as LINE signs it (x-line-signature), to URL: "
                                   "`line-connector webhook` or the service's /v1/webhooks/ROUTE. Prints "
                                   "{\"url\", \"status\", \"body\"}; exit 0 on a 2xx answer, 1 otherwise.")
    p.add_argument("url", metavar="URL")
    p.add_argument("--secret-env", required=True, metavar="VAR",
                   help="name of the environment variable holding the channel secret")
    p.add_argument("--text", default="Hello from line-connector", help="the message text of the event")
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS", help="time to wait for the answer")
    p.set_defaults(func=cmd_webhook_send)

    p = sub.add_parser("mcp", help="serve every action as a Model Context Protocol tool over stdio",
                       description="An MCP server on stdin/stdout for AI agents: one tool per action, assets "
                                   "from the config file (the same file `serve` reads). Needs the [mcp] extra: "
                                   "pip install '.[mcp]' in a checkout of the pack.")
    p.add_argument("--config", required=True, metavar="FILE",
                   help="YAML config naming the assets (${NAME} is read from the environment)")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("serve", help="serve the actions over HTTP on the waitress WSGI server",
                       description="Serve POST /v1/actions/{name}, the webhook ingress, /openapi.json, /healthz "
                                   "and /metrics. Needs the [service] extra (pip install '.[service]' in a "
                                   "checkout of the pack). Callers send Authorization: Bearer <key> with a key "
                                   "of the config's api_keys. --sandbox needs no config: a try-out against "
                                   "the embedded sandbox, on loopback, with no API key.")
    p.add_argument("--config", metavar="FILE",
                   help="YAML config: assets, api_keys, state, webhooks (${NAME} is read from the environment); "
                        "required unless --sandbox")
    p.add_argument("--sandbox", action="store_true",
                   help="no config: serve against an in-process sandbox with its demo assets (loopback only, "
                        "no API key); prints the URL, the asset names and a webhook route to try")
    p.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=SERVE_PORT, help="port to listen on (0: any free port)")
    p.add_argument("--no-auth", action="store_true",
                   help="ask for no API key (allowed only on a loopback address)")
    p.add_argument("--threads", type=_threads, default=8, metavar="N", help="threads per serving process")
    p.add_argument("--workers", type=_workers, default=1, metavar="N",
                   help="serving processes sharing the port (default 1; Linux and macOS): more throughput on "
                        "more cores; the state store, metrics and webhook route bounds are shared")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("docs", help="generate the action reference (docs/actions/) from the manifest and schemas")
    p.add_argument("--out", default=os.path.join("docs", "actions"), metavar="DIR",
                   help="directory the pages are written into (DIR/README.md, DIR/ACTION.md)")
    p.add_argument("--check", action="store_true", help="exit 1 if the docs are out of date")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("check", help="load every action class, schema and asset; fail loudly on a mismatch")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("export", help="write the pack as platform connectors (Swimlane Turbine)",
                       description="Write one Swimlane Turbine connector per vendor into OUTDIR "
                                   "(OUTDIR/line_messaging_api, OUTDIR/nxcloud, OUTDIR/sobot), "
                                   "generated from the manifest; an earlier export there is replaced.")
    p.add_argument("platform", choices=["turbine"], help="the platform to export for")
    p.add_argument("outdir", metavar="OUTDIR", help="directory the connectors are written into")
    p.set_defaults(func=lambda args: __import__("line_connector.turbine", fromlist=["cmd_export"]).cmd_export(args))
    return parser


_BIND_ERRORS = {
    errno.EADDRINUSE: ("--port", "port {port} is in use; pick another with --port (0 picks a free one)"),
    errno.EACCES: ("--port", "port {port} needs privileges on this system; pick one above 1023 with --port"),
    errno.EADDRNOTAVAIL: ("--host", "address {host} is not an address of this machine; "
                                    "use --host 127.0.0.1 (or an address this machine has)"),
}


def _environment_error(exc, args):
    """The JSON error (cause and fix) for an OSError the user can act on, or
    None for one that is a bug. Servers (sandbox, webhook) let their bind
    errors propagate to here, so every command reports them alike."""
    import socket

    port, host = getattr(args, "port", None), getattr(args, "host", None)
    if isinstance(exc, socket.gaierror) and host is not None:  # resolvable at parse time, not at bind time
        message = "cannot listen on host %r: %s; %s" % (host, exc.strerror or exc, _HOST_FIX)
        return {"error": message, "details": [{"path": "--host", "message": message}]}
    if exc.errno in _BIND_ERRORS and port is not None:
        path, text = _BIND_ERRORS[exc.errno]
        message = text.format(port=port, host=host)
        return {"error": message, "details": [{"path": path, "message": message}]}
    # a file a command was pointed at (docs --out, a server's file); not for `run`, whose
    # files are read before anything is sent (_read_json), so exit 2 must keep meaning
    # "nothing sent" there
    if exc.filename is not None and getattr(args, "command", None) != "run":
        message = "cannot use %s: %s; check the path and its permissions" % (exc.filename, exc.strerror)
        return {"error": message, "details": [{"path": str(exc.filename), "message": message}]}
    return None


def _run_help(parser, argv):
    """`run ACTION --help`: the run options, then ACTION's own inputs and
    example (argparse alone would show the same text for every action).
    True when it printed that help."""
    if len(argv) < 3 or argv[0] != "run" or not ({"-h", "--help"} & set(argv)):
        return False
    names = [a for a in argv[1:] if not a.startswith("-")]
    from .manifest import manifest

    spec = manifest().actions.get(names[0]) if names else None
    if spec is None:
        return False
    from .describe import describe

    sys.stdout.write(parser.run_parser.format_help() + "\n" + describe(spec))
    return True


def main(argv=None):
    import warnings

    from .errors import ManifestError

    # stderr carries JSON only; verify_ssl: false is the asset's explicit choice
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")

    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    if _run_help(parser, given):
        return EXIT_OK
    if not given:
        # bare `line-connector`: the usage is what a newcomer needs; on stderr,
        # since stdout carries only results, and exit 2 like any usage error
        parser.print_help(sys.stderr)
        return EXIT_INPUT
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
        known = _environment_error(exc, args) if isinstance(exc, OSError) else None
        if known is not None:  # the environment, not a bug: say what to change
            _print_json(known, sys.stderr)
            return EXIT_INPUT
        if os.environ.get("LINE_CONNECTOR_DEBUG"):  # opt-in, for developers of the pack
            import traceback

            traceback.print_exc()
        _error("internal error: %s (set LINE_CONNECTOR_DEBUG=1 for a traceback)" % type(exc).__name__)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
