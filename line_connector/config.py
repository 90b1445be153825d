"""The one loader for the service and MCP config file (SPEC sections 9, 10).

``load_config(path)`` reads the YAML file, substitutes ``${NAME}`` from the
environment, validates the result against schemas/meta/service_config.schema.json
and picks each asset's kind from its fields exactly as the runner does
(``select_asset`` over all of the manifest's assets). ``line-connector mcp``
uses the assets; ``serve`` will reuse the same loader for the rest.

Why substitution happens after parsing, on string values only: an
environment value is data, never YAML, so a token holding ``: #`` or a quote
cannot change the file's structure. Every substituted value and every
``format: password`` field is a secret to the loader: errors name the field
(``config.assets.ops_line.token``) or the variable, never a value, and the
objects returned never show a secret in their repr.
"""
import os
import re
from collections import namedtuple

from .errors import InputError
from .redaction import Redactor

CONFIG_SCHEMA = "meta/service_config.schema.json"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: what select_asset needs of an action spec: a name and the accepted assets
_AnyAsset = namedtuple("_AnyAsset", "name assets")


class ConfiguredAsset:
    """A named asset of the config: its kind (a manifest asset name) and its
    values with defaults filled. The repr shows name and kind only."""

    __slots__ = ("name", "kind", "values")

    def __init__(self, name, kind, values):
        self.name, self.kind, self.values = name, kind, values

    def __repr__(self):
        return "ConfiguredAsset(name=%r, kind=%r)" % (self.name, self.kind)


class UnknownAsset(InputError):
    """A call named an asset the config does not have (the service: 404)."""


class ServiceConfig:
    """The validated config. ``assets``: {name: ConfiguredAsset} in file
    order; ``api_keys`` (list, secret), ``state`` (str or None), ``webhooks``
    ({route: {"asset", "forward"}}), ``allow_inline_assets`` (bool),
    ``tools`` (the MCP tool patterns, or None for every action)."""

    def __init__(self, path, assets, api_keys, state, webhooks, allow_inline_assets, redactor, tools=None):
        self.path = path
        self.assets = assets
        self.api_keys = api_keys
        self.state = state
        self.webhooks = webhooks
        self.allow_inline_assets = allow_inline_assets
        self.redactor = redactor  # knows every secret of the file, for whoever prints
        self.tools = tools

    def offers_tool(self, action_name):
        """True when ``tools:`` is left out or one of its names or glob
        patterns matches ``action_name`` (fnmatch, case-sensitive)."""
        from fnmatch import fnmatchcase

        return self.tools is None or any(fnmatchcase(action_name, p) for p in self.tools)

    def assets_for(self, accepted):
        """Configured assets whose kind is one of ``accepted``, in file order."""
        return [a for a in self.assets.values() if a.kind in accepted]

    def pick_asset(self, spec, wanted, path="asset"):
        """The configured asset a call of action ``spec`` uses: the one named
        ``wanted``, or (``wanted`` None) the only one that fits. Shared by the
        doors (MCP, service) so both choose alike. Raises ``UnknownAsset`` for
        a name not in the config, ``InputError`` for any other problem;
        ``path`` is what the details call the argument."""
        fitting = self.assets_for(spec.assets)
        if wanted is not None:
            if not isinstance(wanted, str):
                raise InputError("invalid asset", [{"path": path, "message": "must be a string naming a "
                                                                             "configured asset"}])
            chosen = self.assets.get(wanted)
            if chosen is None:
                raise UnknownAsset("unknown asset", [{"path": path, "message": "is not a configured asset "
                                                      "(configured: %s)" % ", ".join(self.assets)}])
            if chosen.kind not in spec.assets:
                raise InputError("asset does not fit", [{"path": path, "message": "is a %s asset; %s "
                                                         "accepts %s" % (chosen.kind, spec.name,
                                                                         " or ".join(spec.assets))}])
            return chosen
        if len(fitting) == 1:
            return fitting[0]
        if not fitting:
            raise InputError("no configured asset fits %s" % spec.name,
                             [{"path": path, "message": "no asset of kind %s is configured; add one to "
                                                        "the config file" % " or ".join(spec.assets)}])
        raise InputError("several configured assets fit %s" % spec.name,
                         [{"path": path, "message": "is required when several configured assets fit "
                                                    "(one of %s)" % ", ".join(a.name for a in fitting)}])

    def __repr__(self):
        return "ServiceConfig(path=%r, assets=%r, api_keys=<%d hidden>, state=%s, webhooks=%r)" % (
            self.path, sorted(self.assets), len(self.api_keys),
            "<set>" if self.state else None, sorted(self.webhooks))


def _read_yaml(path):
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError("cannot read the config file",
                         [{"path": "--config", "message": "cannot be read: %s; check the path and its "
                                                          "permissions" % exc.strerror}]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("the config file is not UTF-8",
                         [{"path": "config", "message": "is not valid UTF-8 (bad byte at offset %d)"
                                                        % exc.start}]) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        # only the position and the parser's own words: its snippet of the
        # file could be a line holding a literal secret
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise InputError("the config file is not valid YAML",
                         [{"path": "config", "message": "is not valid YAML%s: %s" % (where, problem)}]) from None


def _substitute(node, path, environ, redactor, details):
    """``node`` with every ``${NAME}`` in its strings replaced; a variable
    that is unset or empty adds a detail naming it and where it is used."""
    if isinstance(node, dict):
        return {k: _substitute(v, "%s.%s" % (path, k), environ, redactor, details) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, "%s[%d]" % (path, i), environ, redactor, details) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def value_of(match):
        name = match.group(1)
        value = environ.get(name)
        if not value:
            details.append({"path": path, "message": "uses environment variable %s, which is not set or is "
                                                     "empty; set it before starting" % name})
            return ""
        redactor.add(value)  # anything read from the environment may be a credential
        return value
    return _VAR.sub(value_of, node)


def _rebase(details, old, new):
    """Details of ``old``-prefixed paths (the runner's ``asset.token``)
    re-rooted at ``new`` (``config.assets.ops_line.token``)."""
    out = []
    for d in details:
        path = d["path"]
        if path == old or path.startswith(old + ".") or path.startswith(old + "["):
            path = new + path[len(old):]
        out.append({"path": path, "message": d["message"]})
    return out


def _pick_kinds(raw_assets, redactor):
    """{name: ConfiguredAsset}, each kind chosen by the runner's own rules."""
    from .manifest import manifest
    from .runner import select_asset
    from .validation import url_problems

    every = _AnyAsset("config", manifest().asset_names)
    assets, details = {}, []
    for name, given in raw_assets.items():
        where = "config.assets.%s" % name
        try:
            kind, values = select_asset(every, given)
        except InputError as exc:
            details.append({"path": where, "message": "fits no asset kind of the pack (%s); set the fields "
                                                      "of one of them" % ", ".join(every.assets)})
            details.extend(_rebase(exc.details, "asset", where))
            continue
        bad = url_problems(values)
        if bad:
            details.extend(_rebase(bad, "asset", where))
            continue
        assets[name] = ConfiguredAsset(name, kind, values)
    return assets, details


def _tool_pattern_problems(patterns, actions):
    """A ``tools:`` entry that matches no action is a typo, not a wish: said
    at start (config.tools[i]) instead of an MCP server with a tool missing."""
    from fnmatch import fnmatchcase

    return [{"path": "config.tools[%d]" % i, "message": "matches no action (names and glob patterns "
                                                         "such as line_send_*; see line-connector list)"}
            for i, pattern in enumerate(patterns or ()) if not any(fnmatchcase(a, pattern) for a in actions)]


def load_config(path, environ=None):
    """Read, substitute, validate: a ``ServiceConfig`` or an ``InputError``
    whose details name every problem (paths like ``config.assets.x.token``)."""
    from .manifest import manifest
    from .runner import _register_secrets
    from .validation import json_value_problems
    from .validation import errors_to_details, iter_errors

    environ = os.environ if environ is None else environ
    redactor = Redactor()
    data = _read_yaml(path)
    if data is None:
        data = {}
    # literal secrets written in the file are secrets too
    if isinstance(data, dict) and isinstance(data.get("assets"), dict):
        for given in data["assets"].values():
            _register_secrets(redactor, given)
    details = []
    data = _substitute(data, "config", environ, redactor, details)
    if details:
        raise InputError("the config file uses environment variables that are not set",
                         redactor.scrub_obj(details))
    details = json_value_problems(data, "config")
    if not details:
        details = errors_to_details(iter_errors(CONFIG_SCHEMA, data), "config")
    if details:
        raise InputError("invalid config file", redactor.scrub_obj(details))
    for given in data["assets"].values():
        _register_secrets(redactor, given)
    for key in data.get("api_keys", ()):
        redactor.add(key)
    assets, details = _pick_kinds(data["assets"], redactor)
    webhooks = data.get("webhooks", {})
    for route, spec in webhooks.items():
        where = "config.webhooks.%s.asset" % route
        target = assets.get(spec["asset"])
        if spec["asset"] not in data["assets"]:
            details.append({"path": where, "message": "names an asset that is not in config.assets (%s)"
                                                      % ", ".join(data["assets"])})
        elif target is not None and target.kind != "line_channel_secret":
            details.append({"path": where, "message": "must name a line_channel_secret asset (with "
                                                      "channel_secret): webhooks are verified with it"})
    if details:
        raise InputError("invalid config file", redactor.scrub_obj(details))
    pack = manifest()  # a broken pack is loud here, not at the first call
    details = _tool_pattern_problems(data.get("tools"), pack.actions)
    if details:
        raise InputError("invalid config file", details)
    return ServiceConfig(tools=data.get("tools"), path=path, assets=assets, api_keys=list(data.get("api_keys", ())),
                         state=data.get("state"), webhooks=webhooks,
                         allow_inline_assets=data.get("allow_inline_assets", False), redactor=redactor)


__all__ = ["ConfiguredAsset", "ServiceConfig", "UnknownAsset", "load_config", "CONFIG_SCHEMA"]
