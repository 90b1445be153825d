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
    ``inline_asset_hosts`` (list of ``host`` or ``host:port``),
    ``inline_policy`` (the ``InlineAssetPolicy`` built from them) and
    ``tools`` (the MCP tool patterns, or None for every action)."""

    def __init__(self, path, assets, api_keys, state, webhooks, allow_inline_assets, redactor,
                 inline_asset_hosts=(), tools=None):
        self.path = path
        self.assets = assets
        self.api_keys = api_keys
        self.state = state
        self.webhooks = webhooks
        self.allow_inline_assets = allow_inline_assets
        self.inline_asset_hosts = list(inline_asset_hosts)
        self.inline_policy = InlineAssetPolicy(self.inline_asset_hosts)
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


def _nearest_kinds(given, by_asset):
    """The asset kinds that share the most field names with ``given``: a
    config asset with one mistyped URL is told what is wrong with its own
    kind, not with each of the pack's other kinds. Ties are all named; no
    field in common with any kind names none (then every kind is listed)."""
    from .manifest import manifest

    if not isinstance(given, dict):
        return []
    shared = {kind: len(set(given) & set(manifest().asset(kind).schema.get("properties", {})))
              for kind in by_asset}
    best = max(shared.values(), default=0)
    return [kind for kind in by_asset if best and shared[kind] == best]


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
            nearest = _nearest_kinds(given, getattr(exc, "by_asset", None) or {})
            if not nearest:
                details.append({"path": where, "message": "fits no asset kind of the pack (%s); set the fields "
                                                          "of one of them" % ", ".join(every.assets)})
                details.extend(_rebase(exc.details, "asset", where))
                continue
            details.append({"path": where, "message": "fits no asset kind of the pack; closest by its fields: %s "
                                                      "(every kind's fields: `line-connector describe ACTION`)"
                                                      % ", ".join(nearest)})
            for kind in nearest:
                details.extend(_rebase([{"path": d["path"], "message": "%s (for asset %s)" % (d["message"], kind)}
                                        for d in exc.by_asset[kind]], "asset", where))
            continue
        bad = url_problems(values)
        if bad:
            details.extend(_rebase(bad, "asset", where))
            continue
        assets[name] = ConfiguredAsset(name, kind, values)
    return assets, details


def _api_key_problems(keys):
    """A key with leading or trailing whitespace (a secret file's trailing
    newline, read through ``${NAME}``) would make every call 401, since a
    caller's ``Bearer`` value never carries it: refused at start (SPEC 12),
    naming the key by position, never by value."""
    return [{"path": "config.api_keys[%d]" % i,
             "message": "has leading or trailing whitespace (a secret file's trailing newline?); remove it: "
                        "callers could never send it in 'Authorization: Bearer <key>'"}
            for i, key in enumerate(keys) if isinstance(key, str) and key != key.strip()]


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
        redactor.add(key.strip())  # a key with stray whitespace is refused below, and its core is a secret too
    assets, details = _pick_kinds(data["assets"], redactor)
    details = _api_key_problems(data.get("api_keys", ())) + details
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
    hosts = data.get("inline_asset_hosts", [])
    for i, entry in enumerate(hosts):
        if parse_host_entry(entry) is None:
            details.append({"path": "config.inline_asset_hosts[%d]" % i,
                            "message": "must be a host name or an IP address, optionally with :port "
                                       "(api.example.com, api.example.com:8443, 10.0.0.5:8080, [::1]:8090)"})
    details.extend(_tool_pattern_problems(data.get("tools"), pack.actions))
    if details:
        raise InputError("invalid config file", redactor.scrub_obj(details))
    return ServiceConfig(tools=data.get("tools"), path=path, assets=assets, api_keys=list(data.get("api_keys", ())),
                         state=data.get("state"), webhooks=webhooks,
                         allow_inline_assets=data.get("allow_inline_assets", False), redactor=redactor,
                         inline_asset_hosts=hosts)


# ------------------------------------------------------------ inline assets
#
# Why a policy at all: an inline asset is a caller's object, and its URL
# fields say where the service connects. Unchecked, a caller reaches
# whatever the service can reach (a metadata endpoint, an admin port on
# loopback, the private network) and gets the answer back in
# ``json_body``. So an inline asset may reach only the vendors' public hosts
# (the defaults of assets/*.yaml) and the hosts the operator listed in
# ``inline_asset_hosts``; and whatever the name, only a public address,
# unless the operator listed that very address. The check is made twice:
# here, on the asset's text, for a 422 naming the field before anything is
# sent; and by the transport (``line_connector.http.peer_policy``) on the
# host each connection is for and the address it is about to connect to,
# which is what decides: no spelling of an address (``127.1``,
# ``0x7f.1``, ``2130706433``, ``[::1]``), no name resolving to a private
# address, no DNS answer changed between the two checks gets through.

def _canonical_host(host):
    """``host`` lower-cased without a trailing dot; an IP address in its
    canonical text (every spelling the C resolver accepts for IPv4:
    ``127.1``, ``0x7f.1``, ``2130706433`` are all ``127.0.0.1``)."""
    import ipaddress
    import socket

    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if host and all(c in "0123456789abcdefx." for c in host):
            try:
                return socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                pass
        return host
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


_NAT64 = None


def _embedded_ipv4(address):
    """The IPv4 addresses an IPv6 address carries to a gateway that acts on
    them: NAT64 (64:ff9b::/96, RFC 6052), IPv4-compatible (::/96), 6to4
    (2002::/16, RFC 3056) and Teredo (2001::/32, RFC 4380: server and
    client). ``64:ff9b::7f00:1`` reaches 127.0.0.1 through a NAT64 gateway,
    so it is judged by 127.0.0.1; Python's ``is_global`` alone does not."""
    import ipaddress

    global _NAT64
    if address.version != 6:
        return ()
    if _NAT64 is None:
        _NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
    found = []
    if any(address in net for net in _NAT64) and int(address) > 1:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return tuple(found)


def _is_ip(host):
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_host_entry(entry):
    """(canonical host, port or None) of one ``inline_asset_hosts`` entry
    (``host``, ``host:port``, ``[v6]``, ``[v6]:port``), or None when it is
    not one."""
    if not isinstance(entry, str) or not entry or any(c.isspace() or c in "/?#@" for c in entry):
        return None
    port = None
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
        if not _is_ip(host):
            return None
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host = entry
    if port is not None:
        if not port.isdigit() or not port.isascii() or not 1 <= int(port) <= 65535:
            return None
        port = int(port)
    host = _canonical_host(host)
    if not host or (":" in host and not _is_ip(host)):
        return None
    return host, port


def _vendor_hosts():
    """The hosts of every URL default of the pack's assets (api.line.me,
    api-data.line.me, ...): the vendors' public hosts."""
    from urllib.parse import urlsplit

    from .manifest import manifest
    from .validation import _REQUEST_URL_FIELDS

    hosts = set()
    pack = manifest()
    for name in pack.asset_names:
        for key, prop in pack.asset(name).schema.get("properties", {}).items():
            default = prop.get("default")
            if key in _REQUEST_URL_FIELDS and isinstance(default, str):
                host = urlsplit(default).hostname
                if host:
                    hosts.add((_canonical_host(host), None))
    return frozenset(hosts)


class InlineAssetPolicy:
    """Where an inline asset may connect: a host admitted by name (the
    vendors' hosts, ``inline_asset_hosts``), and an address that is public
    or listed itself. An entry without a port admits the default ports (443
    and 80). Used by the service (``problems``, before a run) and, through
    ``line_connector.http.peer_policy``, by the transport on every
    connection (``allows_host``, ``allows_address``)."""

    DEFAULT_PORTS = (80, 443)

    def __init__(self, entries=()):
        listed = [parse_host_entry(e) for e in entries]
        self.listed = frozenset(e for e in listed if e is not None)
        self._vendors = None

    @property
    def hosts(self):
        if self._vendors is None:
            self._vendors = _vendor_hosts()
        return self._vendors | self.listed

    def _admits(self, entries, host, port):
        return (host, port) in entries or ((host, None) in entries and port in self.DEFAULT_PORTS)

    def allows_host(self, host, port):
        """May a connection be made for ``host``:``port`` (as the URL names it)?"""
        return self._admits(self.hosts, _canonical_host(host), port)

    def allows_address(self, ip, port):
        """May a connection be made to address ``ip``:``port``? A public
        address, or one the operator listed itself (a name admits only
        public addresses: a name is not a promise about where it resolves)."""
        import ipaddress

        text = _canonical_host(ip)
        if self._admits(self.listed, text, port):
            return True
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return all(a.is_global and not a.is_multicast for a in (address,) + _embedded_ipv4(address))

    def problems(self, asset, resolve=True):
        """Details for every URL field of an inline asset (a dict as the
        caller sent it) that names a host or an address it may not reach.
        Names listed by the operator are resolved here too (the vendors'
        hosts are public; the transport checks every connection anyway),
        so a listed name that resolves to a private address is a 422 with
        its field, not a connection failure."""
        import socket
        from urllib3.util import parse_url

        from .validation import _REQUEST_URL_FIELDS

        details = []
        for key in sorted(asset) if isinstance(asset, dict) else ():
            value = asset[key]
            if key not in _REQUEST_URL_FIELDS + ("http_proxy",) or not isinstance(value, str):
                continue
            path = "asset." + key
            try:
                parsed = parse_url(value)
                host, port = parsed.host, parsed.port or {"https": 443, "http": 80}.get(parsed.scheme or "")
            except Exception:  # noqa: BLE001 - the URL check of the runner names it
                continue
            if not host or port is None:
                continue
            if not self.allows_host(host, port):
                details.append({"path": path, "message": "names a host an inline asset may not reach: only "
                                "the vendors' hosts and the config's inline_asset_hosts are allowed"})
                continue
            canonical = _canonical_host(host)
            if not resolve or (canonical, None) in self._vendors_only() or _is_ip(canonical):
                if _is_ip(canonical) and not self.allows_address(canonical, port):
                    details.append({"path": path, "message": "names an address an inline asset may not "
                                    "reach (loopback, private, link-local or reserved)"})
                continue
            try:
                infos = socket.getaddrinfo(canonical, port, 0, socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                continue  # the transport reports it: not sent
            if any(not self.allows_address(info[4][0], port) for info in infos):
                details.append({"path": path, "message": "names a host that resolves to an address an inline "
                                "asset may not reach (loopback, private, link-local or reserved); list that "
                                "address in inline_asset_hosts to allow it"})
        return details

    def _vendors_only(self):
        return self.hosts - self.listed

    def __repr__(self):
        return "InlineAssetPolicy(listed=%d)" % len(self.listed)


__all__ = ["ConfiguredAsset", "ServiceConfig", "UnknownAsset", "InlineAssetPolicy", "load_config",
           "parse_host_entry", "CONFIG_SCHEMA"]
