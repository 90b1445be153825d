"""The one dispatcher: action name + asset + inputs -> output.

    manifest -> asset selection -> input validation -> action class
             -> request(s) -> HttpClient -> results (secrets scrubbed)

Used by the CLI, the Python API (``run_action``) and the pytest fixture, so
all three behave the same way.
"""
from .errors import ActionError, AuthFailed, InputError, ManifestError
from .http import DEFAULT_DEADLINE, DEFAULT_TIMEOUT, check_seconds, client_for, deadline_scope
from .manifest import manifest
from . import state
from .redaction import Redactor
from .validation import apply_defaults, errors_to_details, inline_errors, iter_errors, json_value_problems, url_problems


def _asset_details(asset_name, values):
    aspec = manifest().asset(asset_name)
    filled = apply_defaults(aspec.schema, values)
    return filled, errors_to_details(inline_errors("asset:" + asset_name, aspec.schema, filled), "asset")


def secret_fields(spec):
    names = set()
    for asset_name in spec.assets:
        names.update(manifest().asset(asset_name).secret_fields)
    return names


# ------------------------------------------------ secrets and plain-JSON checks

def _integral_floats_as_int(value):
    """``value`` with every float that is a whole number (``2.0``) made an
    int. JSON has one number type and JSON Schema's ``integer`` accepts
    ``2.0``, so a caller (or a platform's JSON library) may send one where an
    action counts with it (``range(max_pages)``, ``"%d"``); Python would
    refuse it mid-run. Same value, the type the action code expects. Only
    up to 2**53, where a float still holds every whole number exactly."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= 2 ** 53 else value
    if isinstance(value, dict):
        return {k: _integral_floats_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        if set(map(type, value)) == {str}:  # recipient lists: nothing to convert (a C-level pass)
            return value
        return [_integral_floats_as_int(v) for v in value]
    return value


def _register_secrets(redactor, asset):
    """Register every secret the asset holds before anything can fail: the
    ``format: password`` field of every asset of the pack (a secret given
    under another asset's field name is still a secret), and the user and
    password of any URL in it (``http_proxy`` may legitimately carry them)."""
    if not isinstance(asset, dict):
        return
    for key in _pack_secret_fields(manifest()):
        redactor.add(asset.get(key))
    for value in asset.values():
        redactor.add_url(value)


_SECRET_FIELDS = {}


def _pack_secret_fields(m):
    """Every ``format: password`` field name of the pack's assets, worked out
    once per manifest (a warm run listed them from every asset's schema)."""
    found = _SECRET_FIELDS.get(id(m))
    if found is None or found[0] is not m:
        names = []
        for asset_name in m.asset_names:
            names.extend(k for k in m.asset(asset_name).secret_fields if k not in names)
        found = _SECRET_FIELDS[id(m)] = (m, tuple(names))
    return found[1]


def _no_credentials(spec, asset):
    """True when no asset was given at all (None or ``{}``)."""
    return asset is None or asset == {}


def _no_credential_field(spec, asset):
    """For an asset that has fields but none any accepted asset requires (a
    misspelt ``token``, say): a message naming what each kind of asset needs,
    since "no asset given" would be untrue and the field list alone is long."""
    if not isinstance(asset, dict) or not asset:
        return None
    needs, required = [], set()
    for asset_name in spec.assets:
        fields = manifest().asset(asset_name).schema.get("required", ())
        required.update(fields)
        needs.append("%s needs %s" % (asset_name, ", ".join(fields)))
    if required & set(asset):
        return None
    return "the asset has none of the fields a credential needs (%s)" % "; ".join(needs)


NO_ASSET = ('no asset given: pass {"asset": {...}} or try --sandbox to run against the embedded sandbox')
TRY_SANDBOX = "no account yet? add --sandbox to run against the embedded emulator with its own credentials"


def _internal_error(redactor, exc):
    """An ``InternalError`` for an unexpected exception: its type and its
    text with secrets masked, never the exception itself."""
    from .errors import InternalError

    text = ""
    if not isinstance(exc, UnicodeError):  # its text quotes a character of the string, maybe a secret
        try:
            text = redactor.scrub(str(exc))
        except Exception:
            pass
    if len(text) > 500:  # cut after scrubbing: no partial secret is left to show
        text = text[:500] + "..."
    kind = type(exc).__name__
    return InternalError("internal error: %s%s" % (kind, ": " + text if text else ""), kind)


#: asset selections that succeeded, by (manifest, accepted assets, the asset's
#: fields with their exact types): a pure function of those, and a warm caller
#: sends with the same asset again and again. Flat assets of scalars only.
_SELECTED = {}
_SELECTED_MAX = 256
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _selection_key(spec, given):
    """The memo key of ``select_asset(spec, given)``, or None when ``given``
    is not a flat object of plain scalars (then it is checked every time).
    Each value's type is part of the key: True, 1 and 1.0 are equal and hash
    alike, yet only one of them is a boolean."""
    try:
        items = tuple((k, type(v), v) for k, v in given.items())
    except AttributeError:
        return None
    for k, kind, _v in items:
        if kind not in _SCALARS or type(k) is not str:
            return None
    return (tuple(spec.assets), items)


def select_asset(spec, given):
    """Pick the asset (of those the action accepts) that the given fields
    form. Returns (asset_name, values with defaults). Raises InputError that
    says, for each accepted asset, which fields are missing or wrong."""
    key = _selection_key(spec, given) if isinstance(given, dict) else None
    if key is not None:
        found = _SELECTED.get(key)
        if found is not None and found[0] is manifest():  # the manifest it was checked against
            return found[1], dict(found[2])
    asset_name, filled = _select_asset(spec, given)
    if key is not None:
        if len(_SELECTED) >= _SELECTED_MAX:
            _SELECTED.clear()
        _SELECTED[key] = (manifest(), asset_name, dict(filled))
    return asset_name, filled


def _select_asset(spec, given):
    if not isinstance(given, dict):
        raise InputError("invalid asset", [{"path": "asset", "message": "must be a JSON object"}])
    failures = []
    for asset_name in spec.assets:
        filled, details = _asset_details(asset_name, given)
        if not details:
            return asset_name, filled
        failures.append((len(details), asset_name, details))
    failures.sort(key=lambda f: f[0])
    details = []
    for _, asset_name, ds in failures:
        for d in ds:
            details.append({"path": d["path"], "message": "%s (for asset %s)" % (d["message"], asset_name)})
    names = ", ".join(spec.assets)
    exc = InputError("the asset matches none of the assets %s accepts (%s)" % (spec.name, names), details)
    exc.by_asset = {asset_name: ds for _, asset_name, ds in failures}  # for a caller that narrows them
    raise exc


def _spec(name):
    try:
        return manifest().action(name)
    except KeyError:
        raise InputError("unknown action %r" % (name,),
                         [{"path": "action", "message": "is not an action of this pack; "
                                                        "`line-connector list` shows them"}]) from None


def summarize_failure(output):
    if isinstance(output, dict):
        if output.get("error"):
            return output["error"]
        output = output.get("requests") or []
    results = output
    bad = [r for r in results if not r.get("ok")]
    first = bad[0] if bad else {}
    text = "%d of %d request(s) failed" % (len(bad), len(results))
    if first:
        text += "; first: %s %s" % (first.get("status_code"), first.get("reason"))
        if first.get("note"):
            text += " (%s)" % first["note"]
    return text


class _SendLog:
    """The run's HTTP client, recording every result it returns, so a run
    cut short by an unreachable state store can say truthfully what was
    sent before (everything else goes to the client itself)."""

    def __init__(self, client):
        self._client = client
        self.results = []

    def send(self, request):
        result = self._client.send(request)
        self.results.append(result)
        return result

    def __getattr__(self, name):
        return getattr(self._client, name)


def _state_failure(redactor, exc, results):
    """The ActionError of a run whose state store (Redis) became unreachable:
    the results of what was sent before (each with its own ``delivery``), then
    one result saying the rest was not sent. Exit 1, no traceback."""
    reached = [r for r in results if r.get("delivery") != "not sent"]
    if reached:
        told = ("%d request(s) had been sent before (their results are listed, each with its delivery); "
                "nothing more was sent" % len(reached))
    else:
        told = "nothing was sent"
    message = "%s; %s. Retry when the state store is back" % (redactor.scrub(str(exc)), told)
    output = [dict(r, ok=r.get("ok", False)) for r in results]
    output.append({"status_code": 0, "reason": "State store unreachable", "response_headers": {},
                   "json_body": None, "error": message, "delivery": "not sent", "ok": False})
    return ActionError(message, redactor.scrub_obj(output))


def run_action(name, asset=None, inputs=None, *, dry_run=False, timeout=None, sandbox=None,
               client=None, progress=None, deadline=None, local_files=True):
    """Run one action and return its output (what the CLI prints).

    Raises ``InputError`` (nothing sent) or ``ActionError`` (refused or
    unreachable; ``.output`` holds the full output).

    ``sandbox``: a running ``line_connector.sandbox.Sandbox``; the asset's
    URLs are pointed at it and missing credentials filled with its own.
    ``timeout``: (connect, read) seconds or one number for both, per attempt.
    ``deadline``: seconds the whole action may take (default 60): every
    request, retry, token fetch and lock wait of the run ends within it,
    whatever a server does; a request it leaves no time for is reported
    ``"delivery": "not sent"``, one it cuts ``"unknown"``. A zero, negative,
    infinite or NaN ``timeout``/``deadline`` is an ``InputError``.
    ``progress``: called as progress(done, total) during multi-request sends.
    ``local_files=False``: refuse inputs naming a file on this machine (the
    action class's ``local_paths``, e.g. ``save_to``): the HTTP service and
    the MCP server pass it, since their callers must not read or write the
    server's files.
    """
    spec = _spec(name)
    asset = {} if asset is None else asset
    inputs = {} if inputs is None else inputs
    redactor = Redactor()
    _register_secrets(redactor, asset)  # first: everything below may fail and print
    state.register_secrets(redactor)  # a Redis state URL may carry a password
    sends = _SendLog(None)
    failure = None
    # --sandbox runs keep their tokens and retry keys in a private temporary
    # state directory (one per Sandbox), never in the user's cache (SPEC 8)
    state_scope = state.private(sandbox) if sandbox is not None else None
    try:
        import time

        started = time.monotonic()  # the deadline counts from here, validation and token fetches included
        deadline = DEFAULT_DEADLINE if deadline is None else check_seconds(deadline, "deadline")
        if timeout is not None:
            pair = (timeout, timeout) if not isinstance(timeout, (tuple, list)) else tuple(timeout)
            if len(pair) != 2:
                raise InputError("invalid timeout", [{"path": "timeout",
                                                      "message": "must be seconds or (connect, read) seconds"}])
            timeout = tuple(check_seconds(t, "timeout") for t in pair)
        run_store = state.store()  # an unusable LINE_CONNECTOR_STATE is exit 2 before anything is sent
        if sandbox is not None:
            asset = sandbox.asset_for(spec.assets, asset)
            _register_secrets(redactor, asset)
        # plain JSON first: the schema validator recurses and compares numbers
        floats = []  # where the inputs hold floats: only then is there one to make an int
        not_json = json_value_problems(asset, "asset") + json_value_problems(inputs, "inputs", floats)
        if not_json:
            raise InputError("asset and inputs must be plain JSON", not_json)
        if floats:
            inputs = _integral_floats_as_int(inputs)  # plain JSON here, so nesting is bounded
        asset_name, asset_values, inputs_error = None, None, None
        try:
            asset_name, asset_values = select_asset(spec, asset)
        except InputError as exc:  # report the inputs' errors too, in one go
            inputs_error = exc
            misspelt = _no_credential_field(spec, asset)
            if _no_credentials(spec, asset):
                inputs_error = InputError(NO_ASSET, exc.details)
            elif misspelt:
                inputs_error = InputError(misspelt + ("; " + TRY_SANDBOX if sandbox is None else ""), exc.details)
            elif sandbox is None:
                inputs_error = InputError(exc.message + "; " + TRY_SANDBOX, exc.details)
        else:
            bad_urls = url_problems(asset_values)
            if bad_urls:
                inputs_error = InputError("invalid asset", bad_urls)
        details = []
        if not isinstance(inputs, dict):
            details = [{"path": "inputs", "message": "must be a JSON object"}]
        else:
            details = errors_to_details(iter_errors(spec.inputs, inputs), "inputs")
        if inputs_error is not None:
            raise InputError(inputs_error.message, inputs_error.details + details)
        if details:
            raise InputError("invalid inputs", details)
        cls = spec.load_class()
        if not local_files:
            refused = [{"path": "inputs." + field,
                        "message": "names a file on the server, which the HTTP service and the MCP server do "
                                   "not allow (their callers must not read or write the server's files); use "
                                   "the CLI or the Python API"
                                   + ("; leave it out to get the content base64-encoded" if field == "save_to"
                                      else "")}
                       for field in cls.local_paths if field in inputs]
            if refused:
                raise InputError("invalid inputs", refused)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if client is None:
            client = client_for(verify=asset_values.get("verify_ssl", True),
                                proxy=asset_values.get("http_proxy"), timeout=timeout,
                                pool_size=max(10, inputs.get("max_workers", 1)))
        sends = _SendLog(client)
        action = cls(asset_values, asset_name, sends, redactor, progress=progress)
        action.spec = spec
        action.state_store = run_store  # looked up once per run
        if dry_run and not cls.local:
            return redactor.scrub_obj([r.describe() for r in action.build(inputs)])
        with deadline_scope(deadline, start=started):  # read by every send of the run, worker threads too
            raw, ok = action.execute(inputs)
        state.annotate(raw, run_store)
    # Each error is rebuilt from scrubbed text and raised after the except
    # blocks, so it carries neither __cause__ nor __context__: the original
    # (its args, repr, traceback locals) may hold a secret.
    except InputError as exc:  # a misconfigured state store stays one: the service answers it 503, not 422
        kind = state.StateMisconfigured if isinstance(exc, state.StateMisconfigured) else InputError
        failure = kind(redactor.scrub(exc.message), redactor.scrub_obj(exc.details))
    except ActionError as exc:
        failure = ActionError(redactor.scrub(exc.message), redactor.scrub_obj(exc.output))
    except AuthFailed as exc:  # raised outside a send (e.g. by a local action)
        failure = ActionError(redactor.scrub(str(exc)), redactor.scrub_obj([exc.result]))
    except ManifestError as exc:
        failure = ManifestError(redactor.scrub(str(exc)))
    except state.StateUnavailable as exc:
        failure = _state_failure(redactor, exc, sends.results)
    except Exception as exc:  # a bug: never let its text or its chain out unscrubbed
        failure = _internal_error(redactor, exc)
    finally:
        if state_scope is not None:
            state_scope.close()
    if failure is not None:
        raise failure
    output = redactor.scrub_obj(raw)
    for key in action.reveal(raw, inputs):
        output[key] = raw[key]
    if not ok:
        raise ActionError(summarize_failure(output), output)
    return output
