"""``GET /openapi.json``: the service described as OpenAPI 3.1 (SPEC 9).

Generated from the manifest on every start, never written by hand, so the
document a platform imports (n8n, Power Automate, Postman, schemathesis) can
only say what the service does:

* one path per action, ``POST /v1/actions/{name}``: operationId = action
  name, summary = title, the manifest's description; the request body
  ``{"asset", "inputs"}`` where ``asset`` is an enum of the configured asset
  names that fit the action (plus an inline object when the config has
  ``allow_inline_assets: true``) and ``inputs`` the action's own input
  schema without the inputs that name a file on the server (``save_to``,
  ``image_path``: the service refuses them; an action that requires one is
  left out); the manifest's example on the media type and on the request
  schema; the 200 answer is its output schema;
* the error answers the app gives (401, 404, 409, 413, 422, 502), the
  ``Idempotency-Key`` header (no example or default: an importer would send
  that one value on every call, and every call after the first would be a
  replay) and the ``Idempotent-Replayed`` answer header;
* ``GET /v1/actions``, ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``, and
  ``POST /v1/webhooks/{route}`` when the config has a route;
* ``servers``: the absolute URL the document was fetched from;
* component schemas titled with their own unique names (code generators
  name classes after titles), none a bare alias of another;
* one bearer security scheme, required by the actions; the read-only
  service paths (app.PUBLIC_PATHS: the action list, health, metrics, this
  document) and the webhooks (LINE signs those; it sends no API key) say
  ``security: []``.

Why the schemas go through ``schema_views.resolved_schema`` into
``components/schemas``: OpenAPI 3.1 schemas are JSON Schema 2020-12, but a
``$ref`` inside the document resolves against the *document*, so the pack's
file-relative references (``../common/messages.json#/$defs/...``) are
rewritten to ``#/components/schemas/<name>``, each definition once for the
whole document (the flex and template schemas are shared by every message
action).

Why the pack's own keywords are renamed to ``x-`` extensions: JSON Schema
ignores unknown keywords, but importers and strict validators do not always,
and a platform could not enforce them anyway. The service still enforces
them (the runner validates every call with the real schema files); the
document carries them as ``x-maxUtf16Length``, ``x-maxGraphemes``,
``x-sameLengthAcrossItems``, ``x-numericMaximum``, ``x-finite``,
``x-errorMessage`` so nothing is lost (schema_views.openapi_schema). ``maxUtf16Length: N`` also adds the standard ``maxLength: N`` (a string
of at most N UTF-16 units has at most N code points: a bound that never
refuses a valid value). ``discriminator`` is already said as if/then by
``resolved_schema``.

Only the standard library and the pack's own modules are imported, so the
document can be built (and tested) without the ``[service]`` extras. The
output is deterministic: the same config and pack give the same bytes with
``json.dumps(..., sort_keys=True)``, and dict order follows the manifest.
"""
from .. import __version__
from ..schema_views import CUSTOM_KEYWORDS, FILE_INPUTS, needs_a_file, openapi_schema, resolved_schema, without_file_inputs

#: kept under its old name: the pack's keywords renamed to x- extensions
portable = openapi_schema

OPENAPI_VERSION = "3.1.0"
JSON_SCHEMA_DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"
REF = "#/components/schemas/"

#: component names of the document's own schemas (a pack definition may not take them)
ERROR = "Error"
INVALID = "InvalidRequest"
REFUSED = "Refused"
ACTION_LIST = "ActionList"
INLINE_ASSET = "InlineAsset"
WEBHOOK_BODY = "LineWebhookBody"
WEBHOOK_ANSWER = "WebhookAnswer"
WEBHOOK_ERROR = "WebhookError"


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name):
    return {"$ref": REF + name}


def _fixed_components():
    detail = {"type": "object", "required": ["path", "message"],
              "properties": {"path": {"type": "string", "description": "The field, e.g. inputs.messages[0].text"},
                             "message": {"type": "string", "description": "The rule it breaks"}}}
    return {
        ERROR: {"type": "object", "required": ["error", "details"],
                "description": "What went wrong, in words, and the field it is about (details may be "
                               "empty); never a secret or a traceback.",
                "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": detail}}},
        WEBHOOK_ERROR: {"type": "object", "required": ["error"],
                        "description": "Why the delivery was not taken; never a secret or an event.",
                        "properties": {"error": {"type": "string"},
                                       "details": {"type": "array", "items": detail}}},
        INVALID: {"type": "object", "required": ["error", "details"],
                  "description": "Invalid inputs or asset: nothing was sent. Each detail names the field "
                                 "and the rule, exactly as the CLI prints it (exit 2).",
                  "properties": {"error": {"type": "string"}, "details": {"type": "array", "items": detail}}},
        REFUSED: {"type": "object", "required": ["error", "output"],
                  "description": "The vendor refused the request or could not be reached; output is what "
                                 "the CLI prints (the vendor's status, headers and body, and whether it "
                                 "was delivered).",
                  "properties": {"error": {"type": "string"}, "output": {}}},
        ACTION_LIST: {"type": "array", "items": {
            "type": "object", "required": ["name", "title"],
            "properties": {"name": {"type": "string"}, "title": {"type": "string"}}}},
        INLINE_ASSET: {"type": "object", "description": "An asset given inline (its fields, as on the "
                                                        "CLI's --asset); its kind is picked from its fields. "
                                                        "Accepted only with allow_inline_assets: true.",
                       "minProperties": 1},
        WEBHOOK_BODY: {"type": "object", "required": ["destination", "events"],
                       "description": "A LINE webhook request body (LINE's webhook.yml CallbackRequest).",
                       "properties": {"destination": {"type": "string"},
                                      "events": {"type": "array", "items": {"type": "object"}}}},
        WEBHOOK_ANSWER: {"type": "object", "required": ["handed_over", "duplicates"],
                         "description": "How many events of the delivery were handed to the sinks now, and "
                                        "how many had been handed over before (not again).",
                         "properties": {"handed_over": {"type": "integer", "minimum": 0},
                                        "duplicates": {"type": "integer", "minimum": 0}}},
    }


def _asset_schema(config, spec):
    fitting = [a.name for a in config.assets_for(spec.assets)]
    named = {"type": "string",
             "description": "Name of a configured asset of kind %s" % " or ".join(spec.assets)}
    if fitting:
        named["enum"] = fitting
    else:
        named["description"] += " (none is configured: every call is answered 404 until one is added)"
    if getattr(config, "allow_inline_assets", False):
        return {"oneOf": [named, _ref(INLINE_ASSET)]}
    return named


def _error_responses(kinds):
    texts = {
        "400": ("The body is not a JSON object, a bad Content-Length, or an invalid Idempotency-Key "
                "(1 to 255 printable ASCII characters)", ERROR),
        "401": ("No valid API key (Authorization: Bearer <key>)", ERROR),
        "404": ("Unknown action, asset or route", ERROR),
        "405": ("Method not allowed on this path", ERROR),
        "409": ("A request with this Idempotency-Key is still running; retry later", ERROR),
        "411": ("Content-Length is required", ERROR),
        "413": ("The body is larger than 10 MiB", ERROR),
        "403": ("Refused without an API key (--no-auth): the request came from another site or named a "
                "host that is not a loopback name", ERROR),
        "415": ("The body is not application/json", ERROR),
        "422": ("Invalid inputs or asset, or an Idempotency-Key reused with another body; nothing was sent",
                INVALID),
        "500": ("An internal error; whether anything was sent is unknown (the answer says so)", ERROR),
        "502": ("The vendor refused the request or could not be reached", REFUSED),
        "503": ("The state store is unavailable, so an Idempotency-Key cannot be honoured: the action was "
                "not run; retry later with the same key", ERROR),
    }
    return {code: _json(_ref(texts[code][1]), texts[code][0]) for code in kinds}


def _action_path(config, spec, defs, names):
    inputs = without_file_inputs(portable(resolved_schema(spec.inputs, defs, names, REF)))
    output = portable(resolved_schema(spec.outputs, defs, names, REF))
    for schema in (inputs, output):
        schema.pop("$schema", None)  # the document's dialect applies
    from ..validation import iter_errors

    fitting = [a.name for a in config.assets_for(spec.assets)]
    # as the app reads the body: asset may be left out when exactly one
    # configured asset fits, inputs when {} is valid for the action
    required = [] if len(fitting) == 1 else ["asset"]
    if any(True for _ in iter_errors(spec.inputs, {})):
        required.append("inputs")
    request = {"type": "object", "additionalProperties": False,
               "properties": {"asset": _asset_schema(config, spec),
                              "inputs": {"$ref": REF + spec.name + ".inputs",
                                         "description": "The action's inputs (left out: {})"}}}
    if required:
        request["required"] = required
    example = spec.example
    replayed = {"description": "true when this answer is a stored one replayed for a repeated Idempotency-Key",
                "schema": {"type": "string", "enum": ["true"]}}
    operation = {
        "operationId": spec.name,
        "summary": spec.title,
        "description": spec.description,
        "tags": [spec.name.split("_", 1)[0]],
        "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(spec.name + ".request")}}},
        "responses": dict({"200": {"description": "The output, exactly as the CLI prints it",
                                   "headers": {"Idempotent-Replayed": replayed},
                                   "content": {"application/json": {"schema": _ref(spec.name + ".output")}}}},
                          **_error_responses(("400", "401", "403", "404", "409", "411", "413", "415", "422", "500", "502",
                                             "503"))),
    }
    for code in ("422", "502"):
        operation["responses"][code]["headers"] = {"Idempotent-Replayed": replayed}
    if example is not None and fitting:
        body = {"asset": fitting[0], "inputs": {k: v for k, v in example.items() if k not in FILE_INPUTS}}
        # on the media type (Swagger UI, Redocly) and on the schema, where a
        # converter generating from the schema (openapi-to-postmanv2) finds it
        operation["requestBody"]["content"]["application/json"]["example"] = body
        request["examples"] = [body]
    components = {spec.name + ".inputs": inputs, spec.name + ".output": output, spec.name + ".request": request}
    return operation, components


def _webhook_path(config):
    routes = sorted(getattr(config, "webhooks", None) or {})
    route = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
    if routes:
        route["enum"] = routes
    fail = lambda text: _json(_ref(WEBHOOK_ERROR), text)  # noqa: E731
    return {"post": {
        "operationId": "webhook",
        "summary": "Receive a LINE webhook",
        "description": "Set https://<this service>/v1/webhooks/<route> as the channel's webhook URL. The "
                       "body is verified with x-line-signature against the route's channel secret (400 and "
                       "nothing forwarded when it fails); every event is handed to every sink of the route "
                       "before 200; a sink failure answers 500 so LINE redelivers; an event whose "
                       "webhookEventId was handed over in the last 24 h (a redelivery, or another replica) "
                       "is not handed over again. No API key: LINE's signature authenticates the call.",
        "tags": ["webhooks"],
        "security": [],
        "parameters": [
            {"name": "route", "in": "path", "required": True, "schema": route},
            {"name": "x-line-signature", "in": "header", "required": True,
             "description": "base64 HMAC-SHA256 of the body with the channel secret",
             "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(WEBHOOK_BODY)}}},
        "responses": {
            "200": _json(_ref(WEBHOOK_ANSWER), "Every event was handed to every sink (or was a duplicate)"),
            "400": fail("Missing or bad signature, a bad Content-Length, or a body that is not a LINE "
                        "webhook; nothing was forwarded"),
            "404": fail("Unknown route"),
            "411": fail("Content-Length is required"),
            "413": fail("The body is larger than 10 MiB"),
            "415": fail("The body is not application/json"),
            "503": fail("The route is busy: as many deliveries as it takes at once are being handed over "
                        "(its sinks are slow); LINE redelivers later"),
            "500": fail("A sink or the state store failed: nothing is marked as handed over, LINE "
                        "redelivers, and events already handed over are not handed over twice"),
        },
    }}


def _drop_aliases(schemas, paths):
    """A component that is only a ``$ref`` to another (``flexBox`` naming
    ``flex_box``) is removed and every reference to it points at its target:
    code generators build the target's class once per name and then refuse
    the duplicate (openapi-python-client drops the operations using it)."""
    def target(name, seen=()):
        schema = schemas.get(name)
        if isinstance(schema, dict) and set(schema) <= {"$ref", "$comment", "description"} \
                and schema.get("$ref", "").startswith(REF) and name not in seen:
            return target(schema["$ref"][len(REF):], seen + (name,))
        return name

    aliases = {n: target(n) for n in schemas if target(n) != n}

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF) and ref[len(REF):] in aliases:
                node["$ref"] = REF + aliases[ref[len(REF):]]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    for name in aliases:
        del schemas[name]
    rewrite(schemas)
    rewrite(paths)


def document(config, base_url=None):
    """The OpenAPI 3.1 document (a JSON-ready dict) for ``config``: a
    ``ServiceConfig`` (line_connector.config) or anything with ``assets``
    ({name: obj with .kind}), ``assets_for``, ``webhooks`` and
    ``allow_inline_assets``. ``base_url`` (``http://host:port``, what the
    document was fetched from) becomes ``servers``: an importer resolves
    every path against it, and a relative ``/`` is lost once the document is
    saved to a file. An action that cannot run without a file on the
    server's machine (the rich menu image upload) is left out: the service
    refuses such inputs, so every listed operation can succeed."""
    from ..errors import ManifestError
    from ..manifest import manifest

    pack = manifest()
    schemas = _fixed_components()
    defs, names = {}, {}
    paths = {"/v1/actions": {"get": {
        "operationId": "list_actions", "summary": "List the actions", "tags": ["service"], "security": [],
        "responses": {"200": _json(_ref(ACTION_LIST), "Every action: its name and title")}}}}
    for spec in pack.actions.values():
        if needs_a_file(resolved_schema(spec.inputs)):
            continue
        operation, components = _action_path(config, spec, defs, names)
        paths["/v1/actions/%s" % spec.name] = {"post": operation}
        for name, schema in components.items():
            if name in schemas:
                raise ManifestError("OpenAPI component %s is defined twice" % name)
            schemas[name] = schema
    for name, schema in defs.items():
        if name in schemas:
            raise ManifestError("schema definition %s collides with an OpenAPI component name" % name)
        schemas[name] = portable(schema)
    _drop_aliases(schemas, paths)
    for name, schema in schemas.items():
        # one title per component, its unique name: code generators name
        # their classes after titles, and two alike would make one vanish
        if isinstance(schema, dict) and "$ref" not in schema:
            schema["title"] = name
    if getattr(config, "webhooks", None):  # a route that is not configured answers 404
        paths["/v1/webhooks/{route}"] = _webhook_path(config)
    paths["/healthz"] = {"get": {
        "operationId": "healthz", "summary": "Liveness check", "tags": ["service"], "security": [],
        "responses": {"200": _json({"type": "object", "required": ["status"],
                                    "properties": {"status": {"type": "string", "const": "ok"}}}, "The service is up")}}}
    paths["/readyz"] = {"get": {
        "operationId": "readyz", "summary": "Readiness check: the state store answers", "tags": ["service"],
        "security": [],
        "responses": {
            "200": _json({"type": "object", "required": ["status"],
                          "properties": {"status": {"type": "string", "const": "ready"}}}, "Ready for work"),
            "503": _json({"type": "object", "required": ["status"],
                          "properties": {"status": {"type": "string", "const": "unavailable"}}},
                         "The state store does not answer (the reason is in the service's log); "
                         "retry after Retry-After")}}}
    paths["/metrics"] = {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics", "tags": ["service"], "security": [],
        "responses": {"200": {"description": "Prometheus text exposition format (counters and histograms: "
                                             "no secret, no request body)",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    paths["/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["service"], "security": [],
        "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")}}}
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": JSON_SCHEMA_DIALECT,
        "info": {"title": "%s service" % pack.title, "version": __version__,
                 "description": "%s\n\nEvery action of the pack over HTTP (line-connector serve). Call "
                                "POST /v1/actions/<name> with {\"asset\": <configured asset name>, "
                                "\"inputs\": {...}} and Authorization: Bearer <API key>." % pack.description},
        "servers": [{"url": base_url.rstrip("/") if base_url else "/", "description": "this service"}],
        "security": [{"bearerAuth": []}],
        "tags": sorted(({"name": t} for t in {s.name.split("_", 1)[0] for s in pack.actions.values()}
                        | {"service", "webhooks"}), key=lambda t: t["name"]),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Optional. Send a fresh unique value (a new UUID) for each logical call, "
                               "and the same value only when retrying that call: the first answer under "
                               "a key (per API key and action) is stored for 24 h and replayed, with "
                               "Idempotent-Replayed: true, for a repeat with the same body; a repeat with "
                               "another body is 422; a repeat while the first still runs is 409. Never "
                               "reuse one fixed value across calls: every later call would get the first "
                               "answer back and nothing would be sent. Shared by every replica on one "
                               "state store.",
                "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"}}},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "One of the config file's api_keys"}},
        },
    }


__all__ = ["document", "portable", "CUSTOM_KEYWORDS"]
