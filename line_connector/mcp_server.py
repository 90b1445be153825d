"""``line-connector mcp --config FILE``: every action an MCP tool (SPEC 10).

Model Context Protocol over stdio, with the official SDK's low-level server
(``mcp`` 2.x, the ``[mcp]`` extra): it takes each tool's JSON input schema
as given, so the schema an agent sees is the manifest's own, not one
re-derived from Python signatures.

Everything a tool says comes from the pack:

* name, title, description: the manifest;
* input schema: a compact rendering of the action's schema file in standard
  JSON Schema (``schema_views.mcp_input_schema``: the whole tool list stays
  small enough for an agent, and strict validators such as Ajv compile it),
  plus an optional ``asset`` naming a configured asset; the pack validates
  every call with the full schema, so a tool error names the bad field;
* the tool list: every action, or those the config's ``tools:`` names;
* annotations: the action class (``action_hints``): its HTTP method, whether
  it carries a retry key, and the ``read_only``/``idempotent``/``destructive``
  class attributes where the method alone does not tell;
* a call: ``run_action``, the same runner as the CLI; its output is the
  structured content, and an ``InputError`` or ``ActionError`` is a tool error
  carrying the same JSON the CLI prints.

stdout is the protocol channel; stderr carries JSON lines only, never a
secret (every result is scrubbed with every secret of the config file).
The SDK is imported only by ``serve``: the rest works without it.
"""
import json
import sys
import time

# resolved_schema stays importable from here for older callers; the one
# resolver lives in schema_views, shared with the OpenAPI document
from .schema_views import mcp_input_schema, resolved_schema  # noqa: F401

#: what to install when the SDK is missing (the command prints it, exit 2)
INSTALL_HINT = ("the MCP server needs the official MCP Python SDK (Python 3.10 or later): "
                "pip install '.[mcp]' in a checkout of the pack, pip install 'line-connector[mcp]' where "
                "the pack is published (or: pip install 'mcp>=2,<3')")
ASSET_ARGUMENT = "asset"


def sdk_problem():
    """None when the MCP SDK 2.x can be used here, else what to install."""
    if sys.version_info < (3, 10):
        return "%s; this is Python %d.%d" % (INSTALL_HINT, sys.version_info[0], sys.version_info[1])
    try:
        import mcp.server.lowlevel  # noqa: F401
        import mcp_types  # noqa: F401  (the 2.x types package)
    except ImportError:
        return INSTALL_HINT
    return None


# ------------------------------------------------------------ annotations

def action_hints(cls):
    """MCP tool annotations derived from the action class.

    read-only: a local action (webhook parse), a GET, or a class that says
    ``read_only`` (LINE validation, Sobot queries). idempotent: the class's
    ``idempotent`` when set, else a read. Not a LINE send with a retry key:
    MCP's idempotentHint promises that the same call again has no further
    effect, and the same arguments without a ``retry_key`` get a fresh key
    each time (two calls, two messages, as the agent asked); only a caller's
    own ``retry_key`` makes a resend safe, which the tool's schema says.
    destructive: ``destructive`` when set (deletes, leaving a chat, replacing
    or removing a rich menu), else false: the other writes add messages,
    menus, audiences or read marks and overwrite nothing (reads are never)."""
    local = bool(getattr(cls, "local", False))
    read_only = getattr(cls, "read_only", None)
    if read_only is None:
        read_only = local or getattr(cls, "method", None) == "GET"
    idempotent = getattr(cls, "idempotent", None)
    if idempotent is None:
        idempotent = bool(read_only)
    destructive = False if read_only else bool(getattr(cls, "destructive", False))
    return {"readOnlyHint": bool(read_only), "destructiveHint": destructive,
            "idempotentHint": bool(idempotent), "openWorldHint": not local}


def tool_definitions(config):
    """One MCP tool (a plain dict in the protocol's field names) per action
    of the manifest, in manifest order."""
    from .errors import ManifestError
    from .manifest import manifest

    tools = []
    offers = getattr(config, "offers_tool", None)
    for spec in manifest().actions.values():
        if offers is not None and not offers(spec.name):
            continue
        schema = mcp_input_schema(spec.inputs)
        props = schema.setdefault("properties", {})
        if ASSET_ARGUMENT in props:
            raise ManifestError("action %s: input %r collides with the MCP asset argument"
                                % (spec.name, ASSET_ARGUMENT))
        fitting = [a.name for a in config.assets_for(spec.assets)]
        arg = {"type": "string",
               "description": "Configured asset; needed only when several fit"}
        if fitting:
            arg["enum"] = fitting
        props[ASSET_ARGUMENT] = arg
        description = spec.description
        if not fitting:
            description += (" (No configured asset fits this action: add one of kind %s to the config file.)"
                            % " or ".join(spec.assets))
        tools.append({"name": spec.name, "title": spec.title, "description": description,
                      "inputSchema": schema, "annotations": action_hints(spec.load_class())})
    return tools


# ------------------------------------------------------------ calls

def _pick_asset(config, spec, wanted):
    return config.pick_asset(spec, wanted, ASSET_ARGUMENT)


def call_tool(config, name, arguments):
    """Run one tool call (blocking). Returns (is_error, payload, info):
    payload is a JSON object (the structured content), info what is logged."""
    from .errors import ActionError, InputError, InternalError, ManifestError
    from .manifest import manifest
    from .runner import run_action

    arguments = dict(arguments or {})
    info = {"tool": name}
    try:
        try:
            spec = manifest().action(name)
            offers = getattr(config, "offers_tool", None)
            if offers is not None and not offers(name):
                raise KeyError(name)  # left out by the config's tools: as if it did not exist
        except KeyError:
            raise InputError("unknown tool %r" % (name,), [{"path": "name", "message": "is not a tool of this "
                                                            "server; tools/list shows them"}]) from None
        asset = _pick_asset(config, spec, arguments.pop(ASSET_ARGUMENT, None))
        info["asset"] = asset.name
        output = run_action(name, dict(asset.values), arguments, local_files=False)
    except InputError as exc:
        info["outcome"] = "invalid"
        return True, config.redactor.scrub_obj(exc.to_json()), info
    except ActionError as exc:
        info["outcome"] = "refused"
        return True, config.redactor.scrub_obj({"error": exc.message, "output": exc.output}), info
    except InternalError as exc:
        info["outcome"] = "internal_error"
        return True, {"error": config.redactor.scrub("%s; whether anything was sent is unknown" % exc.message)}, info
    except ManifestError as exc:
        info["outcome"] = "pack_error"
        return True, {"error": config.redactor.scrub("connector pack is inconsistent: %s" % exc)}, info
    except Exception as exc:  # a bug here, outside the runner: its type only, never its text
        info["outcome"] = "internal_error"
        return True, {"error": "internal error: %s; whether anything was sent is unknown"
                               % type(exc).__name__}, info
    info["outcome"] = "ok"
    payload = output if isinstance(output, dict) else {"results": output}
    return False, config.redactor.scrub_obj(payload), info


def log(event, **fields):
    """One JSON line on stderr (the only thing the server writes there)."""
    record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
    record.update(fields)
    try:
        sys.stderr.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class _JsonLogHandler:
    """Routes the SDK's ``logging`` records to ``log`` as JSON lines, scrubbed,
    without a traceback (its locals could hold a secret)."""

    @staticmethod
    def install(redactor):
        import logging

        class Handler(logging.Handler):
            def emit(self, record):
                try:
                    text = redactor.scrub(record.getMessage())
                except Exception:
                    text = "(unprintable log message)"
                log("sdk_log", level=record.levelname.lower(), logger=record.name, message=text[:2000])

        root = logging.getLogger()
        root.handlers[:] = [Handler(level=logging.WARNING)]
        root.setLevel(logging.WARNING)


def serve(config):
    """Serve the tools over stdio until the client closes stdin."""
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from . import __version__

    _JsonLogHandler.install(config.redactor)
    tools = [types.Tool.model_validate(t) for t in tool_definitions(config)]
    schemas = {t.name: t.input_schema for t in tools}

    async def on_list_tools(ctx, params):
        return types.ListToolsResult(tools=tools)

    async def on_call_tool(ctx, params):
        started = time.monotonic()
        is_error, payload, info = await anyio.to_thread.run_sync(call_tool, config, params.name,
                                                                 params.arguments or {})
        log("tool_call", duration_ms=int((time.monotonic() - started) * 1000), **info)
        text = json.dumps(payload, indent=2, ensure_ascii=False)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=payload, is_error=is_error)

    server = Server("line-connector", version=__version__, title="LINE Messaging Connector",
                    instructions="Tools for the LINE Messaging API, NXCloud and Sobot. Sends carry retry keys "
                                 "where the vendor supports them; read each tool's annotations before retrying.",
                    get_tool_input_schema=schemas.get,
                    on_list_tools=on_list_tools, on_call_tool=on_call_tool)

    async def main():
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    log("mcp_listening", tools=len(tools), assets=sorted(config.assets), config=config.path)
    anyio.run(main)
    log("mcp_stopped")


def command(args):
    """``line-connector mcp``: exit 2 (nothing served) when the SDK is missing
    or the config is invalid, each said as the CLI's JSON error object."""
    from .output import EXIT_INPUT, EXIT_OK, print_json as _print_json
    from .config import load_config
    from .errors import InputError

    problem = sdk_problem()
    if problem:
        _print_json({"error": problem, "details": [{"path": "mcp", "message": problem}]}, sys.stderr)
        return EXIT_INPUT
    try:
        config = load_config(args.config)
        _configure_state(config)
    except InputError as exc:
        _print_json(exc.to_json(), sys.stderr)
        return EXIT_INPUT
    serve(config)
    return EXIT_OK


def _configure_state(config):
    """The config's ``state:`` (SPEC 8), checked at start as ``serve`` does
    (SPEC 12): an evicting Redis or refused credentials is exit 2 naming
    ``config.state``; no persistence is a warning line."""
    from . import state

    if config.state:
        state.configure(config.state)
    state.register_secrets(config.redactor)
    state.check_at_start(state.store(), lambda event, text: log(event, message=config.redactor.scrub(text)))
