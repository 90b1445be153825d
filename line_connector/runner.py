"""The one dispatcher: action name + asset + inputs -> output.

    manifest -> asset selection -> input validation -> action class
             -> request(s) -> HttpClient -> results (secrets scrubbed)

Used by the CLI, the Python API (``run_action``) and the pytest fixture, so
all three behave the same way.
"""
from .errors import ActionError, AuthFailed, InputError
from .http import DEFAULT_TIMEOUT, client_for
from .manifest import manifest
from .redaction import Redactor
from .validation import apply_defaults, errors_to_details, iter_errors, validator_for_inline


def _asset_details(asset_name, values):
    aspec = manifest().asset(asset_name)
    filled = apply_defaults(aspec.schema, values)
    validator = validator_for_inline("asset:" + asset_name, aspec.schema)
    return filled, errors_to_details(validator.iter_errors(filled), "asset")


def secret_fields(spec):
    names = set()
    for asset_name in spec.assets:
        names.update(manifest().asset(asset_name).secret_fields)
    return names


def select_asset(spec, given):
    """Pick the asset (of those the action accepts) that the given fields
    form. Returns (asset_name, values with defaults). Raises InputError that
    says, for each accepted asset, which fields are missing or wrong."""
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
    raise InputError("the asset matches none of the assets %s accepts (%s)" % (spec.name, names), details)


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


def run_action(name, asset=None, inputs=None, *, dry_run=False, timeout=None, sandbox=None,
               client=None, progress=None):
    """Run one action and return its output (what the CLI prints).

    Raises ``InputError`` (nothing sent) or ``ActionError`` (refused or
    unreachable; ``.output`` holds the full output).

    ``sandbox``: a running ``line_connector.sandbox.Sandbox``; the asset's
    URLs are pointed at it and missing credentials filled with its own.
    ``timeout``: (connect, read) seconds or one number for both.
    ``progress``: called as progress(done, total) during multi-request sends.
    """
    spec = _spec(name)
    asset = {} if asset is None else asset
    inputs = {} if inputs is None else inputs
    redactor = Redactor()
    if isinstance(asset, dict):
        for key in secret_fields(spec):
            redactor.add(asset.get(key))
    try:
        if sandbox is not None:
            asset = sandbox.asset_for(spec.assets, asset)
            for key in secret_fields(spec):
                redactor.add(asset.get(key))
        asset_name, asset_values, inputs_error = None, None, None
        try:
            asset_name, asset_values = select_asset(spec, asset)
        except InputError as exc:  # report the inputs' errors too, in one go
            inputs_error = exc
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
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, (int, float)):
            timeout = (float(timeout), float(timeout))
        if client is None:
            client = client_for(verify=asset_values.get("verify_ssl", True),
                                proxy=asset_values.get("http_proxy"), timeout=timeout,
                                pool_size=max(10, inputs.get("max_workers", 1)))
        action = cls(asset_values, asset_name, client, redactor, progress=progress)
        action.spec = spec
        if dry_run and not cls.local:
            return redactor.scrub_obj([r.describe() for r in action.build(inputs)])
        raw, ok = action.execute(inputs)
    except InputError as exc:
        raise InputError(redactor.scrub(exc.message), redactor.scrub_obj(exc.details)) from None
    except ActionError as exc:
        raise ActionError(redactor.scrub(exc.message), redactor.scrub_obj(exc.output)) from None
    except AuthFailed as exc:  # raised outside a send (e.g. by a local action)
        out = redactor.scrub_obj([exc.result])
        raise ActionError(redactor.scrub(str(exc)), out) from None
    output = redactor.scrub_obj(raw)
    for key in action.reveal(raw, inputs):
        output[key] = raw[key]
    if not ok:
        raise ActionError(summarize_failure(output), output)
    return output
