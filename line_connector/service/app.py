"""The service's WSGI application (SPEC 9): plain WSGI, no framework.

A door, like the CLI and the MCP server: every action goes through
``run_action`` (validation, transport, redaction, state), the asset is picked
from the config by ``ServiceConfig.pick_asset`` (as the MCP server does), and
this module only maps HTTP to that and back:

* ``GET /v1/actions``, ``GET /openapi.json`` (service/openapi.py),
  ``GET /healthz`` (liveness), ``GET /readyz`` (the state store answers),
  ``GET /metrics`` (service/metrics.py);
* ``POST /v1/actions/{name}``: ``{"asset": "<name>", "inputs": {...}}``;
  200 with the output as the CLI prints it, 422 invalid (nothing sent), 502
  refused or unreachable, 401/404/405/411/413/400 as below; a POST with no
  body at all is ``{}``; a body must be ``application/json`` (415); under
  ``--no-auth`` a cross-site or foreign-Host request is 403
  (``same_site_only``);
* ``POST /v1/webhooks/{route}``: handed to service/webhooks.py's ``Ingress``,
  authenticated by LINE's signature, not by an API key.

Why so careful with the request body: the WSGI server hands the app a stream;
``CONTENT_LENGTH`` is checked before a byte is read (missing: 411, not a
number or negative: 400, past 10 MiB: 413), then exactly that many bytes are
read, so a lying or hostile client can never make the app read more than the
limit or wait for bytes that were never announced.

Why every exception is caught here: a WSGI server prints an app's exception
with its traceback (whose locals may hold a secret). Nothing escapes
``__call__``; a bug becomes a 500 JSON answer and one scrubbed JSON log line.
"""
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time

from .. import jsontext
from ..errors import ActionError, InputError, InternalError, ManifestError
from ..output import SERVICE_EXTRA_HINT
from ..state import StateMisconfigured

MAX_BODY = 10 * 1024 * 1024
JSON_TYPE = "application/json"
#: Prometheus scrapers and platforms read these without an API key: they say
#: nothing secret (action names, counters, the OpenAPI document)
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/actions")
ACTIONS_PREFIX = "/v1/actions/"
WEBHOOKS_PREFIX = "/v1/webhooks/"
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 411: "Length Required", 413: "Content Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Content", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
_LOG_LOCK = threading.Lock()


class HttpError(Exception):
    """An answer decided before the action runs: status, JSON body, headers."""

    def __init__(self, status, message, path=None, detail=None, headers=()):
        super().__init__(message)
        self.status = status
        self.body = {"error": message, "details": [{"path": path, "message": detail or message}]} if path \
            else {"error": message, "details": []}
        self.headers = list(headers)


def log_line(event, redactor=None, **fields):
    """One JSON line on stderr: the only thing the service writes there.
    Scrubbed with every secret of the config; a failing stderr is ignored."""
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
    record.update(fields)
    try:
        text = json.dumps(record, ensure_ascii=True, default=str, allow_nan=False)
        if redactor is not None:
            text = redactor.scrub(text)
        with _LOG_LOCK:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
    except Exception:
        pass


def json_bytes(obj):
    """The body as the CLI prints it: strict JSON, indented, one newline;
    a non-finite number is null and a lone surrogate \\u-escaped."""
    return jsontext.encode(obj)


def _results(output):
    """The HTTP results in an action's output (a list of results, or an
    object holding them under ``requests``), for the retry metric."""
    if isinstance(output, dict):
        output = output.get("requests")
    return [r for r in output if isinstance(r, dict)] if isinstance(output, list) else []


def _takes_retry_key(spec):
    """True for an action with a ``retry_key`` input (LINE's sends)."""
    from ..validation import load_schema_file

    schema = load_schema_file(spec.inputs)
    return isinstance(schema, dict) and "retry_key" in (schema.get("properties") or {})


def _parse_body(body):
    """The request's JSON object: strict (no NaN, no Infinity), UTF-8."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "the request body is not UTF-8", "body",
                        "is not valid UTF-8 (bad byte at offset %d)" % exc.start) from None
    try:
        doc = jsontext.loads(text)
    except RecursionError:
        raise HttpError(400, "the request body is nested too deep", "body", "is nested too deep") from None
    except ValueError as exc:
        raise HttpError(400, "the request body is not valid JSON", "body",
                        "is not valid JSON: %s" % str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise HttpError(400, "the request body must be a JSON object", "body",
                        'must be a JSON object {"asset": "<asset name>", "inputs": {...}}')
    return doc


def content_length(environ, absent_is_empty=False):
    """The announced body size, checked before anything is read. Chunked
    bodies (no Content-Length) are accepted only when the server says the
    stream ends by itself (``wsgi.input_terminated``): None then. With
    ``absent_is_empty``, a request with neither Content-Length nor
    Transfer-Encoding has no body (RFC 9112 section 6.3): 0."""
    raw = environ.get("CONTENT_LENGTH")
    if raw is None or raw == "":
        encoding = environ.get("HTTP_TRANSFER_ENCODING", "")
        if "chunked" in encoding.lower() and environ.get("wsgi.input_terminated"):
            return None
        if absent_is_empty and not encoding:
            return 0
        raise HttpError(411, "a Content-Length header is required", "headers.content-length",
                        "is missing; send the body with a Content-Length header")
    text = str(raw).strip()
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise HttpError(400, "invalid Content-Length", "headers.content-length",
                        "must be a non-negative integer number of bytes")
    size = int(text)
    if size > MAX_BODY:
        raise HttpError(413, "the request body is larger than 10 MiB", "body",
                        "is larger than the limit of %d bytes" % MAX_BODY)
    return size


class ClientGone(Exception):
    """The client closed the connection before the announced body arrived."""


def read_body(environ, absent_is_empty=False):
    """Exactly the announced bytes (at most ``MAX_BODY``)."""
    size = content_length(environ, absent_is_empty)
    stream = environ["wsgi.input"]
    if size is None:  # chunked, terminated by the server: read one byte past the limit
        data = bytearray()
        while len(data) <= MAX_BODY:
            chunk = stream.read(min(65536, MAX_BODY + 1 - len(data)))
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_BODY:
            raise HttpError(413, "the request body is larger than 10 MiB", "body",
                            "is larger than the limit of %d bytes" % MAX_BODY)
        return bytes(data)
    data = bytearray()
    try:
        while len(data) < size:
            chunk = stream.read(size - len(data))
            if not chunk:
                raise ClientGone()
            data += chunk
    except ClientGone:
        raise
    except Exception:  # the server's "client disconnected" (waitress, gunicorn)
        raise ClientGone() from None
    return bytes(data)


class InlineAsset(dict):
    """An asset object sent by the caller (``allow_inline_assets``): its run
    may connect only where ``config.inline_policy`` allows."""


def has_body(environ):
    """Does the request announce a body (a non-zero length, or chunks)?"""
    raw = str(environ.get("CONTENT_LENGTH") or "").strip()
    return (raw not in ("", "0")) or bool(environ.get("HTTP_TRANSFER_ENCODING"))


def require_json(environ):
    """415 unless a request with a body says ``Content-Type:
    application/json`` (parameters such as ``; charset=utf-8`` are fine).
    Why: a browser sends a cross-site ``text/plain`` or form POST without
    asking first (no CORS preflight), but never an ``application/json``
    one; and a body in another format is a client's mistake, said plainly."""
    if not has_body(environ):
        return
    media = str(environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
    if media != JSON_TYPE:
        raise HttpError(415, "the request body must be application/json", "headers.content-type",
                        "must be application/json (got %s)" % (repr(media[:60]) if media else "none"))


_LOOPBACK_NAMES = ("localhost", "localhost.", "::1")


def _loopback_name(host):
    """Is ``host`` (no port) a loopback name: localhost, 127.x.x.x, ::1?"""
    import ipaddress

    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(value):
    """The host part of a ``Host`` header or an origin's authority."""
    value = value.strip()
    if value.startswith("["):
        return value[:value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_site_only(environ):
    """Under ``--no-auth`` (no API key stands between a web page and the
    actions): 403 for a request a browser made on behalf of another site.
    ``Origin`` (not a loopback origin) or ``Sec-Fetch-Site: cross-site``
    is a cross-site request (CSRF); a ``Host`` that is not a loopback name
    is DNS rebinding (a page on evil.example whose name now resolves to
    127.0.0.1). A client that is no browser sends neither header, and its
    ``Host`` is the loopback address it connected to. Webhook routes are
    exempt: LINE's signature authenticates them, and a tunnel that brings
    LINE's deliveries to a loopback service keeps its public ``Host``."""
    host = environ.get("HTTP_HOST")
    if host is not None and not _loopback_name(_split_host(host)):
        raise HttpError(403, "this service answers only requests for a loopback host name", "headers.host",
                        "must be localhost, 127.0.0.1 or [::1] (with --no-auth, a foreign host name is "
                        "how a web page would reach the service)")
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        scheme, sep, rest = origin.strip().partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not _loopback_name(_split_host(rest)):
            raise HttpError(403, "cross-site requests are refused", "headers.origin",
                            "must be a loopback origin: with --no-auth, a web page of another site must not "
                            "run actions")
    elif str(environ.get("HTTP_SEC_FETCH_SITE", "")).strip().lower() == "cross-site":
        # no Origin (a navigation, a no-cors request): the browser's own word. With a loopback
        # Origin (the operator's page on another local port, which browsers call cross-site)
        # the Origin decides
        raise HttpError(403, "cross-site requests are refused", "headers.sec-fetch-site",
                        "is cross-site: with --no-auth, a web page of another site must not run actions")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")


def _base_url(environ):
    """The absolute URL the caller reached this service at (scheme and Host
    header), for the OpenAPI document's ``servers``; None (a relative
    ``/``) when the Host header is missing or is not a plain host[:port]."""
    host = str(environ.get("HTTP_HOST", ""))
    scheme = environ.get("wsgi.url_scheme", "http")
    if not _HOST.match(host) or scheme not in ("http", "https"):
        return None
    return "%s://%s" % (scheme, host)


def _bearer(environ):
    value = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class ServiceApp:
    """The WSGI callable. ``no_auth``: no API key is asked for (only for a
    loopback bind; ``serve`` checks that)."""

    def __init__(self, config, no_auth=False, metrics=None, run=None, shared_dir=None, check_state=True):
        from .metrics import Metrics

        if not config.api_keys and not no_auth:
            raise InputError("the service has no API keys", [{
                "path": "config.api_keys",
                "message": "is missing or empty: callers could run every action; add keys (callers send "
                           "Authorization: Bearer <key>), or serve on a loopback address with --no-auth"}])
        self.config = config
        self.no_auth = no_auth
        self.redactor = config.redactor
        # shared_dir: a worker of `serve --workers N` (see serve_workers): the
        # metrics and the webhook routes' bounds are shared with the others
        self.metrics = metrics or Metrics(known_routes=list(config.webhooks), shared=shared_dir is not None)
        # compared as sha256 digests: equal lengths, so the time says nothing
        # about a key's length either
        self._keys = [(k, hashlib.sha256(k.encode("utf-8")).digest()) for k in config.api_keys]
        self._run = run  # tests may slow the runner down; None: run_action
        self._openapi = {}  # base URL -> document bytes
        self._lock = threading.Lock()
        self._worker = None if shared_dir is None else os.getpid()
        #: a worker of serve --workers: an Idempotency-Key needs a store the
        #: other workers see (a file store degraded to memory is refused)
        self.needs_shared_state = shared_dir is not None
        _configure_state(config, self.log, check=check_state)
        self._ingress = None
        if config.webhooks:  # built now: a bad sink is a start-up error naming its key
            from .webhooks import Ingress

            self._ingress = Ingress(config, self.metrics, log=self.log, strict_text=True,
                                    slots_dir=None if shared_dir is None else os.path.join(shared_dir, "slots"))

    def reserve_threads(self, threads):
        """The server runs the app on ``threads`` threads: webhook
        deliveries together may hold all but two of them, so a hung sink
        never leaves actions and ``/healthz`` without a thread."""
        if self._ingress is not None:
            self._ingress.set_total_limit(max(1, threads - 2))

    def close(self):
        """Release the webhook sinks (files, connections)."""
        if self._ingress is not None:
            self._ingress.close()

    # ------------------------------------------------------------ plumbing

    def log(self, event, **fields):
        if self._worker is not None:  # serve --workers: which process wrote the line
            fields["worker"] = self._worker
        log_line(event, self.redactor, **fields)

    def _api_key(self, environ):
        """The caller's API key ("" with --no-auth); HttpError 401 otherwise."""
        if self.no_auth:
            return ""
        given = _bearer(environ)
        if given is not None:
            # a WSGI header is latin-1 decoded text (PEP 3333): latin-1 gives
            # back the bytes the client sent, so a UTF-8 key matches
            try:
                raw = given.encode("latin-1")
            except UnicodeEncodeError:
                raw = given.encode("utf-8", "surrogateescape")  # not from a WSGI server: never equal
            digest = hashlib.sha256(raw).digest()
            found = None
            for key, key_digest in self._keys:  # every key: the time says nothing about which matched
                if hmac.compare_digest(digest, key_digest):
                    found = key
            if found is not None:
                return found
        raise HttpError(401, "a valid API key is required", "headers.authorization",
                        "must be 'Bearer <API key>' with a key of the service's config",
                        headers=[("WWW-Authenticate", 'Bearer realm="line-connector"')])

    def __call__(self, environ, start_response):
        started = time.monotonic()
        info = {"action": None}
        try:
            status, headers, body = self._dispatch(environ, info)
        except HttpError as exc:
            status, headers, body = exc.status, exc.headers, json_bytes(exc.body)
        except ClientGone:
            self.log("client_disconnected", method=environ.get("REQUEST_METHOD"), path=self._log_path(environ))
            status, headers, body = 400, [], json_bytes({"error": "the client closed the connection before "
                                                                  "the body arrived", "details": []})
        except Exception as exc:  # a bug: its type only (its text could quote an inline asset's secret)
            self.log("internal_error", kind=type(exc).__name__, path=self._log_path(environ))
            status, headers, body = 500, [], json_bytes({"error": "internal error: %s" % type(exc).__name__,
                                                         "details": []})
        if isinstance(body, bytes) and not any(h[0].lower() == "content-type" for h in headers):
            headers = [("Content-Type", JSON_TYPE)] + list(headers)
        headers = list(headers) + [("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
        fields = {"method": str(environ.get("REQUEST_METHOD", ""))[:16], "path": self._log_path(environ),
                  "status": status, "duration_ms": round((time.monotonic() - started) * 1000, 2)}
        fields.update({k: v for k, v in info.items() if v is not None})
        self.log("access", **fields)
        try:
            start_response("%d %s" % (status, _REASONS.get(status, "Error")), headers)
        except Exception as exc:
            self.log("client_disconnected", kind=type(exc).__name__, path=self._log_path(environ))
            return []
        if str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD":
            # RFC 9110 9.3.2: the GET's headers (Content-Length included), no
            # body; a body here would be read as the next answer on a
            # keep-alive connection
            return []
        return [body]

    def _log_path(self, environ):
        """PATH_INFO without the query, cut and made printable (JSON-escaped
        by the logger); an unknown action's name is logged, never labelled."""
        path = environ.get("PATH_INFO", "")
        if not isinstance(path, str):
            return "?"
        return path.encode("latin-1", "replace").decode("utf-8", "replace")[:200]

    # ------------------------------------------------------------ routing

    def _dispatch(self, environ, info):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        if self.no_auth and not path.startswith(WEBHOOKS_PREFIX):  # LINE's signature guards webhooks
            same_site_only(environ)
        if path in PUBLIC_PATHS:
            if method not in ("GET", "HEAD"):
                raise HttpError(405, "method %s is not allowed here; use GET" % method[:16],
                                headers=[("Allow", "GET, HEAD")])
            return self._get(path, environ)
        if path.startswith(ACTIONS_PREFIX) and "/" not in path[len(ACTIONS_PREFIX):]:
            if method != "POST":
                raise HttpError(405, "method %s is not allowed here; use POST" % method[:16],
                                headers=[("Allow", "POST")])
            return self._action(environ, path[len(ACTIONS_PREFIX):], info)
        if path.startswith(WEBHOOKS_PREFIX) and "/" not in path[len(WEBHOOKS_PREFIX):]:
            if method != "POST":
                raise HttpError(405, "method %s is not allowed here; use POST" % method[:16],
                                headers=[("Allow", "POST")])
            return self._webhook(environ, path[len(WEBHOOKS_PREFIX):], info)
        raise HttpError(404, "no such endpoint", "path", "is not an endpoint of this service (see /openapi.json)")

    def _get(self, path, environ=None):
        if path == "/healthz":
            return 200, [], json_bytes({"status": "ok"})
        if path == "/readyz":
            return self._ready()
        if path == "/metrics":
            data, ctype = self.metrics.render()
            return 200, [("Content-Type", ctype)], data
        if path == "/v1/actions":
            from ..manifest import manifest

            return 200, [], json_bytes([{"name": a.name, "title": a.title} for a in manifest().actions.values()])
        base = _base_url(environ or {})
        with self._lock:
            body = self._openapi.get(base)
            if body is None:
                from .openapi import document

                body = json_bytes(document(self.config, base))
                if len(self._openapi) < 16:  # a few names for one service; never grown by any Host a caller sends
                    self._openapi[base] = body
        return 200, [], body

    def _ready(self):
        """``/readyz`` (SPEC 12): 200 when the state store answers now,
        else 503, so a load balancer stops sending work that would only get
        503s. ``/healthz`` stays liveness: a restart does not bring Redis
        back. Why the reason goes to the log and not the body: the path
        needs no API key, and the store's address and error are for the
        operator, not for anyone who can reach the port."""
        from .. import state

        try:
            found = state.store()
            found.ping()
            if self.needs_shared_state and not getattr(found, "shared", True):
                # a worker of serve --workers whose file store fell back to
                # memory refuses keyed calls: not ready, so a balancer and an
                # operator see it (a restart of the worker brings the files back)
                raise state.StateUnavailable(found.note or "the state store is kept in this worker only")
        except (state.StateUnavailable, state.StateMisconfigured, state.LockTimeout, OSError) as exc:
            message = exc.message if isinstance(exc, InputError) else str(exc)
            if isinstance(exc, InputError) and exc.details:
                message = "%s: %s" % (exc.details[0].get("path"), exc.details[0].get("message"))
            self.log("state_store_not_ready", error=self.redactor.scrub(message)[:500])
            return 503, [("Retry-After", "5")], json_bytes({"status": "unavailable"})
        return 200, [], json_bytes({"status": "ready"})

    def _webhook(self, environ, route, info):
        if route not in self.config.webhooks:
            raise HttpError(404, "no such webhook route", "path",
                            "is not a webhook route of the config (config.webhooks)")
        info["route"] = route
        require_json(environ)
        body = read_body(environ)
        headers = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").lower()] = value
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        status, payload = self._ingress.handle(route, headers, body)
        return status, [("Retry-After", "1")] if status == 503 else [], json_bytes(payload)

    # ------------------------------------------------------------ actions

    def _action(self, environ, name, info):
        from ..manifest import manifest

        api_key = self._api_key(environ)  # before anything else: nothing is told to a stranger
        try:
            spec = manifest().action(name)
        except KeyError:
            raise HttpError(404, "unknown action", "action",
                            "is not an action of this service; GET /v1/actions lists them") from None
        info["action"] = spec.name
        idem_key = self._idempotency_key(environ)
        require_json(environ)
        # no body at all is {} (README: asset and inputs may be left out)
        body = read_body(environ, absent_is_empty=True)
        doc = _parse_body(body) if body else {}
        try:
            asset_label, asset, inputs = self._request_parts(spec, doc)
        except HttpError:
            self.metrics.count_request(spec.name, "invalid")
            raise
        if idem_key is None:
            status, payload = self._execute(spec, asset, inputs, info)
            return status, [], json_bytes(payload)
        from . import idempotency

        request_hash = idempotency.fingerprint(spec.name, asset_label, inputs)  # as the caller sent it
        if "retry_key" not in inputs and _takes_retry_key(spec):
            # LINE's own de-duplication backs the record (SPEC 12): the same
            # key on a repeat even when the store has lost the record
            inputs = dict(inputs, retry_key=idempotency.derived_retry_key(api_key, spec.name, idem_key))
        answer = idempotency.run_once(self, api_key, spec.name, idem_key, request_hash,
                                      lambda: self._execute(spec, asset, inputs, info))
        info.setdefault("outcome", "replayed")  # not run here: the stored answer was given
        return answer

    def _idempotency_key(self, environ):
        value = environ.get("HTTP_IDEMPOTENCY_KEY")
        if value is None:
            return None
        from .idempotency import check_key

        return check_key(value)

    def _request_parts(self, spec, doc):
        """(asset label for the fingerprint, asset values, inputs)."""
        unknown = sorted(set(doc) - {"asset", "inputs"})
        if unknown:
            name = unknown[0].encode("utf-8", "backslashreplace").decode("utf-8")[:100]
            raise HttpError(422, "unknown top-level field in the request body", name,
                            'is not an allowed field (use "asset" and "inputs")')
        inputs = doc.get("inputs", {})
        if not isinstance(inputs, dict):
            raise HttpError(422, "invalid inputs", "inputs", "must be a JSON object")
        wanted = doc.get("asset")
        if isinstance(wanted, dict):
            if not self.config.allow_inline_assets:
                raise HttpError(422, "inline assets are not allowed", "asset",
                                "must name a configured asset; inline asset objects need "
                                "allow_inline_assets: true in the config")
            unreachable = self.config.inline_policy.problems(wanted)
            if unreachable:
                err = HttpError(422, "the inline asset names a host it may not reach")
                err.body["details"] = unreachable
                raise err
            digest = hashlib.sha256(json.dumps(wanted, sort_keys=True, ensure_ascii=True,
                                               default=str).encode("ascii")).hexdigest()
            return "inline:" + digest, InlineAsset(wanted), inputs
        from ..config import UnknownAsset

        try:
            chosen = self.config.pick_asset(spec, wanted, "asset")
        except UnknownAsset as exc:
            raise HttpError(404, exc.message, "asset", exc.details[0]["message"]) from None
        except InputError as exc:
            err = HttpError(422, exc.message)
            err.body = exc.to_json()
            raise err from None
        return "name:" + chosen.name, dict(chosen.values), inputs

    def _execute(self, spec, asset, inputs, info):
        """(status, payload) of one run; counts the metrics and puts the
        outcome into ``info`` (the access log line)."""
        status, payload = self._run_counted(spec, asset, inputs)
        info["outcome"] = {200: "ok", 422: "invalid", 502: "refused"}.get(status, "error")
        return status, payload

    def _run_counted(self, spec, asset, inputs):
        from ..http import observe_attempts, peer_policy
        from ..ratelimit import observe
        from ..runner import run_action

        run = self._run or run_action
        name = spec.name
        metrics = self.metrics
        # an inline asset's URLs are the caller's: every connection of its run is checked
        policy = self.config.inline_policy if isinstance(asset, InlineAsset) else None
        try:
            with observe_attempts(lambda seconds: metrics.observe_latency(name, seconds)), peer_policy(policy), \
                    observe(metrics.count_rate_limit):
                output = run(name, asset, inputs, local_files=False)
        except StateMisconfigured as exc:  # the service's setting, not the caller's input: nothing was sent
            metrics.count_request(name, "error")
            self.log("state_misconfigured", action=name, **exc.to_json())
            return 503, self.redactor.scrub_obj(exc.to_json())
        except InputError as exc:
            metrics.count_request(name, "invalid")
            return 422, self.redactor.scrub_obj(exc.to_json())
        except ActionError as exc:
            metrics.count_request(name, "refused")
            for r in _results(exc.output):
                metrics.count_retries(name, r.get("attempts"))
            return 502, self.redactor.scrub_obj({"error": exc.message, "output": exc.output})
        except InternalError as exc:
            metrics.count_request(name, "error")
            self.log("internal_error", action=name, message=exc.message)
            return 500, {"error": self.redactor.scrub("%s; whether anything was sent is unknown" % exc.message),
                         "details": []}
        except ManifestError as exc:
            metrics.count_request(name, "error")
            return 500, {"error": self.redactor.scrub("connector pack is inconsistent: %s" % exc), "details": []}
        except Exception as exc:  # outside the runner: its type only
            metrics.count_request(name, "error")
            self.log("internal_error", action=name, kind=type(exc).__name__)
            return 500, {"error": "internal error: %s; whether anything was sent is unknown" % type(exc).__name__,
                         "details": []}
        metrics.count_request(name, "ok")
        for r in _results(output):
            metrics.count_retries(name, r.get("attempts"))
        return 200, self.redactor.scrub_obj(output)


def _configure_state(config, log, check=True):
    """Point the state store at ``config.state`` (SPEC 8) for this process
    and check it now (SPEC 12: an evicting Redis or refused credentials is
    exit 2 naming ``config.state``; no persistence is a warning line).
    ``check`` False: a worker of ``serve --workers``, whose parent checked
    the same store once before forking (and logged its warnings once)."""
    from .. import state

    if config.state:
        state.configure(config.state)
    state.register_secrets(config.redactor)  # a Redis URL's password is a secret of every log line
    if not check:
        return
    # config.state, else LINE_CONNECTOR_STATE: either one is checked now, and
    # its warnings become JSON log lines (never plain text on stderr)
    state.check_at_start(state.store(), lambda event, text: log(event, message=text))


def create_app(config, no_auth=False, metrics=None, run=None, **options):
    """The WSGI application for a loaded ``ServiceConfig``. Raises
    ``InputError`` (naming ``config.api_keys``) when there are no API keys
    and ``no_auth`` is not set. ``options``: ``shared_dir`` and
    ``check_state``, for the workers of ``serve --workers``."""
    return ServiceApp(config, no_auth=no_auth, metrics=metrics, run=run, **options)


def app_from_env(threads=None, **options):
    """For gunicorn: the app for the file named by ``$LINE_CONNECTOR_CONFIG``.
    A missing variable or an invalid file is one JSON line on stderr and
    ``SystemExit(2)``, which gunicorn reports as a failed worker boot.

    ``threads``: the worker's thread count (gunicorn's ``--threads`` with
    ``-k gthread``). The app cannot see it, and needs it to keep two threads
    of each worker for actions and ``/healthz`` whatever webhook sinks do
    (``reserve_threads``); left out, only the per-route bound applies."""
    from ..config import load_config
    from . import CONFIG_ENV

    path = os.environ.get(CONFIG_ENV)
    try:
        if not path:
            raise InputError("no config file", [{"path": "env." + CONFIG_ENV,
                                                 "message": "is not set; set it to the service's YAML config"}])
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InputError("invalid app_from_env argument", [{"path": "threads",
                                                                "message": "must be a positive integer "
                                                                           "(gunicorn's --threads)"}])
        app = create_app(load_config(path), **options)
        if threads is not None:
            app.reserve_threads(threads)
        return app
    except InputError as exc:
        log_line("startup_failed", **exc.to_json())
        raise SystemExit(2) from None


# ------------------------------------------------------------ serving

#: what to install when the service extras are missing (the command prints it, exit 2)
INSTALL_HINT = SERVICE_EXTRA_HINT
#: seconds an idle connection (no byte at all) is kept: under SPEC 7's 30 s.
#: An idle timeout alone does not stop a client that drips bytes: see
#: HEADER_LIMIT and BODY_LIMIT
CHANNEL_TIMEOUT = 20
CONNECTION_LIMIT = 200
#: seconds: a request that began arriving this recently is never given up for a newcomer
FRESH = 1.0
MAX_HEADER_BYTES = 64 * 1024


def extras_problem():
    """None when waitress, redis and prometheus_client import, else what to
    install (the message names the command exactly)."""
    missing = []
    import importlib.util

    # found, not imported: prometheus_client must not be imported before
    # serve --workers has set its multiprocess directory (see metrics.py)
    for module in ("waitress", "prometheus_client", "redis"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        return "the service needs %s: %s" % (", ".join(missing), INSTALL_HINT)
    return None


def is_loopback(host):
    """True when every address ``host`` resolves to is a loopback one."""
    import ipaddress
    import socket

    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%", 1)[0] for info in infos}
    try:
        return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except ValueError:
        return False


class _WaitressLog:
    """waitress's ``logging`` records as JSON lines, scrubbed, never with a
    traceback (its locals could hold a secret)."""

    @staticmethod
    def install(redactor):
        import logging

        class Handler(logging.Handler):
            def emit(self, record):
                try:
                    text = record.getMessage()
                except Exception:
                    text = "(unprintable log message)"
                log_line("server_log", redactor, level=record.levelname.lower(), logger=record.name,
                         message=text[:2000])

        for name in ("waitress", "waitress.queue"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [Handler(level=logging.WARNING)]
            logger.setLevel(logging.WARNING)
            logger.propagate = False


#: a request's headers must all arrive within this many seconds of its first
#: byte, and its body within ``BODY_LIMIT`` (M1: slowloris, see _guarded_waitress)
HEADER_LIMIT = 10.0
BODY_LIMIT = 30.0
#: seconds between two checks of those limits (waitress's ``cleanup_interval``)
CHECK_INTERVAL = 1
#: seconds past the action deadline that SIGTERM waits for in-flight requests
DRAIN_MARGIN = 5.0

#: waitress internals the guard below relies on; checked at start so a
#: waitress that renamed one fails loudly instead of silently unguarded
_WAITRESS_NEEDS = (("waitress.channel", "HTTPChannel", ("received", "request", "will_close",
                                                       "total_outbufs_len", "last_activity", "handle_close")),
                   ("waitress.parser", "HTTPRequestParser", ("headers_finished", "completed")),
                   ("waitress.server", "TcpWSGIServer", ("maintenance", "channel_class", "readable",
                                                         "handle_accept", "accept", "set_socket_options",
                                                         "fix_addr", "next_channel_cleanup")),
                   ("waitress.server", "MultiSocketServer", ()),
                   ("waitress.task", "ThreadedTaskDispatcher", ("set_thread_count", "shutdown")),
                   ("waitress.adjustments", "Adjustments", ("listen", "cleanup_interval")),
                   ("waitress.wasyncore", "loop", ()))


#: the answer to a connection past the limit: written at once, then closed
_FULL_BODY = b'{"error": "the service has as many connections as it takes; retry shortly", "details": []}\n'
FULL_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
               % len(_FULL_BODY)) + _FULL_BODY


def _refuse(conn):
    """Answer 503 on a just-accepted socket and close it, without ever
    blocking the server's loop: one non-blocking send (the answer is far
    smaller than any socket buffer), then what the client already sent is
    read off (closing on unread data would reset the connection, and the
    client could lose the answer)."""
    import socket

    try:
        conn.setblocking(False)
        conn.send(FULL_ANSWER)
        conn.shutdown(socket.SHUT_WR)
        for _ in range(16):
            if not conn.recv(65536):
                break
    except OSError:
        pass
    finally:
        conn.close()


def _guarded_waitress():
    """(server class, channel class): waitress's TCP server whose
    connections have an absolute time limit per request, and which sheds
    load at the connection limit instead of queueing.

    At the limit (issue 20): waitress stops accepting, so new connections
    wait in the kernel's backlog until a slot frees, and 600 slow clients
    delayed a ``/healthz`` by 20-30 s. Here the server always accepts; a
    new connection past the limit takes the slot of the connection that
    has done the least for the longest time (a request still arriving,
    oldest first; then an idle keep-alive connection, longest idle first:
    nothing of either has reached the app, so nothing is lost but a slow
    client's place). Only when every connection has a request in the app
    or an answer still being sent is the new one answered 503 at once and
    closed.

    Why: waitress's ``channel_timeout`` is an idle timeout, reset by every
    byte, so a client sending one header line every few seconds (slowloris)
    keeps its connection forever, and 200 of them take every connection
    slot. Here each channel notes when the first byte of a request arrived;
    the server's periodic ``maintenance`` closes a connection whose request
    has no complete headers after ``HEADER_LIMIT`` s, or no complete body
    after ``BODY_LIMIT`` s. A request already handed to the app is never cut
    (waitress hands it over only once complete)."""
    import importlib

    for module_name, name, attrs in _WAITRESS_NEEDS:
        owner = getattr(importlib.import_module(module_name), name, None)
        missing = [a for a in attrs if owner is None or not hasattr(owner, a)]
        if owner is None or missing:
            problem = "this waitress version lacks %s.%s%s, which the service's request time limits rely on; " \
                      "pip install 'waitress>=2,<4'" % (module_name, name, " " + ", ".join(missing) if missing else "")
            raise InputError(problem, [{"path": "serve", "message": problem}])
    from waitress.channel import HTTPChannel
    from waitress.server import TcpWSGIServer

    class DeadlineChannel(HTTPChannel):
        #: time.monotonic() of the first byte of the request being received
        request_started = None

        def received(self, data):
            pending = self.request
            now = time.monotonic()
            result = super().received(data)
            if self.request is None:
                self.request_started = None  # complete (handed over) or nothing begun
            elif self.request is not pending or self.request_started is None:
                self.request_started = now  # a new request began in this data
            return result

    class DeadlineServer(TcpWSGIServer):
        channel_class = DeadlineChannel
        redactor = None
        shed = None  # {"evicted": n, "refused": n} since the last log line

        def readable(self):
            """Always accepting (see handle_accept); the periodic
            maintenance as waitress does it."""
            now = time.time()
            if now >= self.next_channel_cleanup:
                self.next_channel_cleanup = now + self.adj.cleanup_interval
                self.maintenance(now)
            return self.accepting

        def _victim(self):
            """The connection to give up for a new one, or None: one with
            nothing in the app and nothing left to send. The longest idle
            first (no byte of a request: a kept-alive connection, or a socket
            that never sent anything, so a flood of empty connections cannot
            cut a legitimate upload), then a request still arriving, oldest
            first, but never one begun in the last ``FRESH`` seconds (the
            drip-feeder has been at it far longer than a real client)."""
            now = time.time()
            best, best_key = None, None
            for channel in self.active_channels.values():
                if channel.requests or channel.total_outbufs_len or channel.will_close:
                    continue
                started = getattr(channel, "request_started", None)
                if started is not None and channel.request is not None:
                    if now - started < FRESH:
                        continue
                    key = (1, started)
                else:
                    key = (0, channel.last_activity)
                if best_key is None or key < best_key:
                    best, best_key = channel, key
            return best

        def handle_accept(self):
            if len(self.active_channels) < self.adj.connection_limit:
                return super().handle_accept()
            try:
                pair = self.accept()
                if pair is None:
                    return
                conn, addr = pair
                self.set_socket_options(conn)
            except OSError:
                return
            if self.shed is None:
                self.shed = {"evicted": 0, "refused": 0}
            victim = self._victim()
            if victim is None:
                self.shed["refused"] += 1
                _refuse(conn)
                return
            self.shed["evicted"] += 1
            victim.handle_close()
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

        def maintenance(self, now):
            super().maintenance(now)  # the idle timeout
            if self.shed and (self.shed["evicted"] or self.shed["refused"]):
                log_line("connections_shed", self.redactor, limit=self.adj.connection_limit, **self.shed)
                self.shed = None
            mono = time.monotonic()
            for channel in list(self.active_channels.values()):
                started, request = getattr(channel, "request_started", None), channel.request
                if started is None or request is None or request.completed or channel.will_close:
                    continue
                limit, part = (BODY_LIMIT, "body") if request.headers_finished else (HEADER_LIMIT, "headers")
                if mono - started > limit:
                    channel.will_close = True
                    log_line("request_too_slow", self.redactor, part=part, limit_s=limit,
                             seconds=round(mono - started, 1))

    return DeadlineServer, DeadlineChannel


def make_server(app, host="127.0.0.1", port=8080, threads=8, channel_timeout=CHANNEL_TIMEOUT,
                connection_limit=CONNECTION_LIMIT, sockets=None):
    """A waitress server for ``app`` with the service's limits (not yet
    running: ``.run()``, ``.close()``, ``.effective_port``, ``.map`` the
    socket map, ``.adj``). Built as waitress's ``create_server`` does for
    TCP listeners, with ``_guarded_waitress``'s server class. ``sockets``:
    listening sockets bound already (``bind_sockets``; a worker of ``serve
    --workers``), instead of ``host`` and ``port``."""
    from waitress.adjustments import Adjustments
    from waitress.server import MultiSocketServer
    from waitress.task import ThreadedTaskDispatcher

    server_class, _ = _guarded_waitress()
    _WaitressLog.install(app.redactor)
    where = {"sockets": list(sockets)} if sockets else {"host": host, "port": port}
    adj = Adjustments(threads=threads, ident="line-connector",
                      max_request_body_size=MAX_BODY, max_request_header_size=MAX_HEADER_BYTES,
                      channel_timeout=channel_timeout, connection_limit=connection_limit,
                      cleanup_interval=CHECK_INTERVAL, expose_tracebacks=False,
                      clear_untrusted_proxy_headers=True, **where)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map = {}
    listeners = []
    bound = [(sock, (sock.family, sock.type, sock.proto, sock.getsockname())) for sock in adj.sockets] \
        or [(None, sockinfo) for sockinfo in adj.listen]
    for sock, sockinfo in bound:
        listener = server_class(app, socket_map, True, sock, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo,
                                bind_socket=sock is None)
        listener.redactor = app.redactor
        listeners.append(listener)
    if len(listeners) == 1:
        server = listeners[0]
        server.map = socket_map
    else:
        server = MultiSocketServer(socket_map, adj, [(s.effective_host, s.effective_port) for s in listeners],
                                   dispatcher, listeners[-1].log_info)
        server.effective_port = listeners[0].effective_port
    server.listeners = listeners
    return server


def _in_flight(socket_map, listeners):
    """Connections with a request being run or an answer not yet sent."""
    return sum(1 for ch in list(socket_map.values())
               if ch not in listeners and (getattr(ch, "requests", None) or getattr(ch, "total_outbufs_len", 0)))


def bind_sockets(host, port):
    """Listening sockets for ``host``:``port``, bound as waitress binds its
    own (every address the name resolves to, IPv6 ones v6-only, address
    reuse on), for the workers of ``serve --workers`` to share: bound once,
    before the fork, so every worker accepts on the same sockets and the
    kernel hands each new connection to one of them."""
    import socket

    from waitress.adjustments import Adjustments

    adj = Adjustments(host=host, port=port)
    sockets = []
    try:
        for family, socktype, proto, sockaddr in adj.listen:
            sock = socket.socket(family, socktype, proto)
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(adj.backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _run_until_signal(server, redactor, url, parent=None, received=None):
    """Serve until SIGTERM or SIGINT (or, in a worker of ``serve
    --workers``, until the ``parent`` process is gone: an orphan must not
    serve on alone); then stop accepting, let the requests in flight
    finish (up to the action deadline + ``DRAIN_MARGIN`` s), log one
    ``stopped`` line and return.

    Why not waitress's own ``run``: on an interrupt it shuts its worker
    threads down within ~5 s and drops every request still running, so a
    deploy (SIGTERM) would cut sends mid-way and leave callers with no
    answer (and, for a send, an unknown outcome)."""
    import signal
    from waitress import wasyncore

    from ..runner import DEFAULT_DEADLINE

    received = [] if received is None else received  # a worker's: signals since its fork

    def stop(signum, _frame):
        received.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    socket_map, adj, listeners = server.map, server.adj, server.listeners
    while not received and socket_map:
        wasyncore.loop(timeout=adj.asyncore_loop_timeout, map=socket_map, use_poll=adj.asyncore_use_poll,
                       count=1)
        if parent is not None and os.getppid() != parent:
            received.append("parent_gone")
    for listener in listeners:  # no new connections; the trigger stays to wake the loop
        listener.accepting = False
        wasyncore.dispatcher.close(listener)
    started = time.monotonic()
    pending = _in_flight(socket_map, listeners)
    end = started + DEFAULT_DEADLINE + DRAIN_MARGIN
    left = pending
    while left and time.monotonic() < end:
        wasyncore.loop(timeout=0.2, map=socket_map, use_poll=adj.asyncore_use_poll, count=1)
        left = _in_flight(socket_map, listeners)
    try:
        name = signal.Signals(received[0]).name if received else None
    except ValueError:
        name = str(received[0])
    fields = {} if parent is None else {"worker": os.getpid()}
    log_line("stopped", redactor, url=url, signal=name, in_flight=pending, unfinished=left,
             waited_s=round(time.monotonic() - started, 2), **fields)
    return name


def serve(config, host="127.0.0.1", port=8080, threads=8, no_auth=False, channel_timeout=CHANNEL_TIMEOUT,
          announce=None, workers=1):
    """Run the service until SIGTERM or Ctrl-C (then drain: see
    ``_run_until_signal``). Raises ``InputError`` for a setting that must
    not start (no API keys, --no-auth off loopback). ``announce(url)`` is
    called once the port is bound (``serve --sandbox`` prints its guide).
    ``workers`` > 1: that many serving processes (``serve_workers``)."""
    if no_auth and not is_loopback(host):
        raise InputError("--no-auth needs a loopback address", [{
            "path": "--no-auth", "message": "serves every action without an API key, so it is allowed only on "
                                            "a loopback address (--host 127.0.0.1 or ::1), not %s" % host}])
    if workers > 1:
        return serve_workers(config, host=host, port=port, threads=threads, no_auth=no_auth,
                             channel_timeout=channel_timeout, workers=workers)
    app = create_app(config, no_auth=no_auth)
    app.reserve_threads(threads)
    server = make_server(app, host=host, port=port, threads=threads, channel_timeout=channel_timeout)
    port = getattr(server, "effective_port", port)
    shown = "[%s]" % host if ":" in host else host
    url = "http://%s:%s" % (shown, port)
    log_line("listening", config.redactor, url=url, threads=threads, auth=not no_auth,
             actions=len(app.metrics.known_actions), assets=sorted(config.assets))
    if announce is not None:
        announce(url)
    try:
        _run_until_signal(server, config.redactor, url)
    finally:
        from waitress import wasyncore

        for closing in (server.task_dispatcher.shutdown, lambda: wasyncore.close_all(server.map), app.close):
            try:
                closing()
            except Exception:
                pass


WORKERS_MAX = 64
QUICK_EXIT_S = 5.0  # a worker that exits sooner than this after its start failed to start
QUICK_EXITS_MAX = 5  # that many in a row: the workers cannot start, serving stops


def serve_workers(config, host="127.0.0.1", port=8080, threads=8, no_auth=False,
                  channel_timeout=CHANNEL_TIMEOUT, workers=2):
    """``serve --workers N``: N serving processes forked from this one,
    every one accepting on the same listening sockets (bound here, once),
    each with ``threads`` threads. Returns ``EXIT_OK`` after SIGTERM or
    Ctrl-C, once every worker drained and stopped; ``EXIT_FAILED`` when the
    workers kept dying at start.

    Why processes: one interpreter runs Python on one core at a time, so a
    single process's throughput stops at one core's worth of JSON, schema
    checks and HTTP parsing, whatever its thread count. What makes the
    workers one service rather than N: the state store (SPEC 8: files or
    Redis, shared by design), hence idempotency keys, the send journal and
    LINE's rate limits; the metrics (prometheus_client's multiprocess
    files, summed on every scrape); and each webhook route's concurrency
    bound (``SharedSlots``). Per worker: the connection limit, the idle
    and slow-request timeouts, and the thread reserve.

    The parent runs the start-up checks once (config, state store), then
    only supervises: a worker that dies is logged (``worker_exited``) and
    replaced; on SIGTERM or SIGINT every worker is told to stop and drains
    as ``serve`` does; a worker whose parent is gone stops by itself."""
    import shutil
    import signal
    import tempfile

    from .. import state
    from ..output import EXIT_OK
    from .metrics import MULTIPROC_ENV

    if not hasattr(os, "fork"):
        raise InputError("--workers needs fork", [{
            "path": "--workers", "message": "serving with several processes needs os.fork (Linux, macOS); "
                                            "on this system run one process per port behind a load balancer"}])
    values = sys.modules.get("prometheus_client.values")
    if values is not None and values.ValueClass.__name__ != "MmapedValue":
        raise RuntimeError("serve_workers must run before prometheus_client is imported: its metrics could "
                           "not be summed across the workers")
    received = []  # SIGTERM / SIGINT from now on: no worker is started after one, and the start-up ends

    def stop(signum, _frame):
        received.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    shared_dir, sockets = None, []
    try:
        shared_dir = tempfile.mkdtemp(prefix="line-connector-serve-")
        os.environ[MULTIPROC_ENV] = os.path.join(shared_dir, "metrics")
        os.mkdir(os.environ[MULTIPROC_ENV], 0o700)
        os.mkdir(os.path.join(shared_dir, "slots"), 0o700)
        create_app(config, no_auth=no_auth).close()  # the start-up checks, once, in the parent
        _guarded_waitress()  # what every worker's make_server needs, checked before listening
        _check_shared_state(state.store())
        sockets = bind_sockets(host, port)
        bound_port = sockets[0].getsockname()[1]
        shown = "[%s]" % host if ":" in host else host
        url = "http://%s:%s" % (shown, bound_port)
        if received:  # stopped during the start-up: nothing was served
            log_line("stopped", config.redactor, url=url, signal=signal.Signals(received[0]).name, workers=0,
                     died=0, killed=0)
            return EXIT_OK
        from ..manifest import manifest

        log_line("listening", config.redactor, url=url, threads=threads, workers=workers, auth=not no_auth,
                 actions=len(manifest().actions), assets=sorted(config.assets))
        parent = os.getpid()
        blocked = {signal.SIGTERM, signal.SIGINT}

        def spawn():
            sys.stdout.flush()
            sys.stderr.flush()
            # a signal between the fork and the worker's own handlers must
            # reach the worker's list, not the parent's copied one: blocked
            # until the worker's handler is set (then it is delivered)
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
            pid = None
            try:
                pid = os.fork()
            finally:
                if pid != 0:  # the parent, forked or not: its signals as before
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if pid:
                return pid
            code = 1  # the worker: never returns
            try:
                early = []
                for sig in blocked:
                    signal.signal(sig, lambda signum, _frame: early.append(signum))
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                _worker(config, sockets, url, threads, no_auth, channel_timeout, shared_dir, parent, early)
                code = 0
            except BaseException as exc:  # a worker never shows a traceback: one JSON line
                try:
                    detail = {"message": exc.message, "details": exc.details} if isinstance(exc, InputError) else {}
                    log_line("worker_failed", config.redactor, worker=os.getpid(), error=type(exc).__name__,
                             **detail)
                except BaseException:
                    pass
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)

        return _supervise(spawn, workers, config.redactor, url, received, sockets)
    finally:
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.environ.pop(MULTIPROC_ENV, None)
        if shared_dir is not None:
            shutil.rmtree(shared_dir, ignore_errors=True)


def _check_shared_state(found):
    """``serve --workers``: the state store must be one every worker sees.
    A file store whose directory cannot be used falls back to one process's
    memory; with several workers each would keep its own idempotency
    records, and a retry reaching another worker would run again. Tried
    now, in the parent: exit 2 naming ``config.state``."""
    from .. import state

    key = "serve-workers-probe-%d" % os.getpid()
    try:
        found.put("serve", key, {"probe": True}, 60)
        found.delete("serve", key)
    except (state.StateUnavailable, state.LockTimeout):
        return  # Redis not answering now: logged by the start-up check, /readyz says 503 until it answers
    except OSError:
        pass
    if not getattr(found, "shared", True):
        raise InputError("--workers needs a state store every worker shares", [{
            "path": "config.state", "message": "%s; with --workers each worker would keep its own "
                                               "Idempotency-Key records and retry-key memory, so a retry "
                                               "reaching another worker could send again. Fix the state "
                                               "directory, or set state: redis://..." % (found.note or
                                                                                        "the state store "
                                                                                        "is not shared")}])


def _worker(config, sockets, url, threads, no_auth, channel_timeout, shared_dir, parent, received):
    """One worker of ``serve_workers``: its own app (state and metrics
    shared through ``shared_dir``), its own waitress on the shared sockets.
    ``received``: the stop signals that arrived since the fork."""
    import shutil

    from waitress import wasyncore

    from ..state import private_dir

    # never re-created, never repaired here: gone, not ours or opened to
    # others since the start (files may have been planted) is a failed start
    private_dir(shared_dir, create=False, repair=False)
    for sub in ("metrics", "slots"):  # a cleaner may have removed them since the start
        private_dir(os.path.join(shared_dir, sub), repair=False)
    app = create_app(config, no_auth=no_auth, shared_dir=shared_dir, check_state=False)
    server, why = None, None
    try:
        app.reserve_threads(threads)
        server = make_server(app, threads=threads, channel_timeout=channel_timeout, sockets=sockets)
        why = _run_until_signal(server, config.redactor, url, parent=parent, received=received)
    finally:
        closing = [app.close]
        if server is not None:
            closing[:0] = [server.task_dispatcher.shutdown, lambda: wasyncore.close_all(server.map)]
        for close in closing:
            try:
                close()
            except Exception:
                pass
    if why == "parent_gone":  # no parent left to remove the shared directory
        shutil.rmtree(shared_dir, ignore_errors=True)


def _supervise(spawn, workers, redactor, url, received, sockets):
    """Keep ``workers`` processes made by ``spawn()`` running until SIGTERM
    or SIGINT lands in ``received``; then close the listening sockets (new
    connections are refused at once, as by one ``serve``), stop the workers
    (SIGTERM: each drains) and wait, SIGKILL for any still running after the
    drain time. Exit code (see ``serve_workers``)."""
    import signal

    from ..output import EXIT_FAILED, EXIT_OK
    from ..runner import DEFAULT_DEADLINE

    running = {}  # pid -> monotonic start
    quick_exits, failed, died = 0, False, 0

    def reaped(pid, status):
        code = os.waitstatus_to_exitcode(status)
        log_line("worker_exited", redactor, worker=pid, exit_code=code)
        return code

    def start():
        """One more worker; a fork that fails (EAGAIN, ENOMEM) is logged and
        counts as a quick exit: tried again on the next round."""
        try:
            running[spawn()] = time.monotonic()
            return True
        except OSError as exc:
            log_line("worker_spawn_failed", redactor, error=type(exc).__name__, errno=exc.errno)
            return False

    started_count = 0
    try:
        for _ in range(workers):
            if received:
                break
            started_count += 1 if start() else 0
        quick_exits = workers - len(running) if not received else 0  # forks that failed
        while not received and not failed:
            time.sleep(0.2)
            if len(running) < workers and not received and not start():  # a fork that failed before
                quick_exits += 1
            if quick_exits >= QUICK_EXITS_MAX:
                failed = True
                log_line("workers_failing", redactor, exits=quick_exits, within_s=QUICK_EXIT_S)
                break
            while running and not received:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                if not pid:
                    break
                started = running.pop(pid, None)
                if started is None:
                    continue
                reaped(pid, status)
                died += 1
                quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_S else 0
                if quick_exits >= QUICK_EXITS_MAX:
                    failed = True
                    log_line("workers_failing", redactor, exits=quick_exits, within_s=QUICK_EXIT_S)
                    break
                start()
    finally:
        for sock in sockets:  # first: a new connection is refused now, never left waiting on a drain
            sock.close()
        for pid in running:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        end = time.monotonic() + DEFAULT_DEADLINE + DRAIN_MARGIN + 5
        while running and time.monotonic() < end:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                time.sleep(0.1)
            elif running.pop(pid, None) is not None and os.waitstatus_to_exitcode(status) != 0:
                reaped(pid, status)  # died while draining: its calls in flight were cut
                died += 1
        killed = len(running)
        for pid in running:  # still serving after the drain time: not ours to wait for any longer
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    try:
        name = signal.Signals(received[0]).name if received else None
    except ValueError:
        name = None
    log_line("stopped", redactor, url=url, signal=name, workers=started_count, died=died, killed=killed)
    return EXIT_FAILED if failed else EXIT_OK


def command(args):
    """``line-connector serve``: exit 2 (nothing served) when the extras are
    missing or the config or the options cannot start a safe service.
    ``--sandbox``: no config; the sandbox's demo assets, no API key, loopback
    only (``line_connector.service.trial``)."""
    from ..config import load_config
    from ..output import EXIT_INPUT, EXIT_OK, print_json as _print_json

    problem = extras_problem()
    if problem:
        _print_json({"error": problem, "details": [{"path": "serve", "message": problem}]}, sys.stderr)
        return EXIT_INPUT
    trial = None
    try:
        if getattr(args, "sandbox", False):
            from .trial import SandboxTrial

            if not is_loopback(args.host):
                raise InputError("--sandbox needs a loopback address", [{
                    "path": "--host", "message": "serve --sandbox answers without an API key, so it listens "
                                                 "only on a loopback address (127.0.0.1 or ::1), not %s"
                                                 % args.host}])
            trial = SandboxTrial()
            config, no_auth = trial.config, True

            def announce(url):
                _print_json(trial.describe(url), sys.stdout)
        else:
            config, no_auth, announce = load_config(args.config), args.no_auth, None
        workers = getattr(args, "workers", 1)
        if trial is not None and workers > 1:
            raise InputError("--sandbox serves with one process", [{
                "path": "--workers", "message": "serve --sandbox is a one-process trial; --workers is for "
                                                "a configured service (serve --config FILE --workers N)"}])
        code = serve(config, host=args.host, port=args.port, threads=args.threads, no_auth=no_auth,
                     announce=announce, workers=workers)
    except InputError as exc:
        _print_json(exc.to_json(), sys.stderr)
        return EXIT_INPUT
    finally:
        if trial is not None:
            trial.stop()
    return EXIT_OK if code is None else code
