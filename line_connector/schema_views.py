"""One source, several renderings: the pack's input and output schemas as
each kind of client can read them.

The pack validates every call with its own schema files (validation.py),
which use keywords of its own (``maxUtf16Length``, ``maxGraphemes``,
``errorMessage``, ``discriminator``, custom formats) and share definitions
across files. Clients meet those schemas through two doors, and each needs
another shape of the *same* schemas, so both shapes are rendered here and
never written by hand:

* ``resolved_schema``: a schema file made self-contained (every ``$ref``
  local), the base of both renderings;
* ``openapi_schema``: for the OpenAPI document (service/openapi.py): every
  definition kept, the pack's keywords renamed to ``x-`` extensions, a
  standard ``maxLength`` beside each UTF-16 limit, every array given
  ``items``; titles are left to the document, which names each component;
* ``mcp_input_schema``: for an MCP tool (mcp_server.py): a compact summary
  an agent can afford (the whole tool list of every action stays under
  96 KiB) in standard JSON Schema 2020-12 keywords only, which Ajv's strict
  mode compiles: one ``type`` on every node, no combinator at the root, no
  ``$comment``, no format or keyword of the pack's own. It *describes*: a
  message array says which message types exist, not every field of a flex
  bubble. The pack still validates every call in full and answers a tool
  error naming the field, so a summary can never let a bad call through.

Inputs that name a file on the server's machine (``FILE_INPUTS``) are left
out of both: the service and the MCP server refuse them (only the CLI reads
local files), so advertising them would only invite a refusal.
"""
import copy
import json
import posixpath

#: inputs that name a file on this machine: only the CLI accepts them
FILE_INPUTS = ("save_to", "image_path")

#: the pack's own keywords (validation.py) and their names in an OpenAPI document
CUSTOM_KEYWORDS = {"maxUtf16Length": "x-maxUtf16Length", "maxGraphemes": "x-maxGraphemes",
                   "sameLengthAcrossItems": "x-sameLengthAcrossItems",
                   "numericMaximum": "x-numericMaximum", "finite": "x-finite",
                   "errorMessage": "x-errorMessage"}

#: keywords whose value is a map of name -> schema
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
#: keywords whose value is a schema
_SCHEMA_ONE = ("items", "additionalProperties", "propertyNames", "contains", "not", "if", "then", "else",
               "unevaluatedItems", "unevaluatedProperties", "contentSchema")
#: keywords whose value is a list of schemas
_SCHEMA_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")


# ------------------------------------------------------------ resolving

def _pointer(doc, pointer):
    node = doc
    for part in [p for p in pointer.lstrip("/").split("/") if p != ""]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _folded(name):
    return "".join(c for c in name.lower() if c.isalnum())


def resolved_schema(relpath, defs=None, names=None, ref_prefix="#/$defs/"):
    """``schemas/<relpath>`` made self-contained: every ``$ref`` (to another
    file, or inside one) points into the result's own ``$defs``, which hold
    each referenced definition once, its own references rewritten the same
    way. Copying every definition inline instead would cost ~280 KB per
    message schema (the flex and template schemas are shared by every
    message type) and cannot end for recursive ones (a flex box holds
    boxes), so the only references left are local ``#/$defs/<name>`` ones,
    which every JSON Schema 2020-12 validator resolves without fetching
    anything. The pack's ``discriminator`` keyword is said as standard
    if/then.

    The OpenAPI document resolves many files into one pool: it passes its
    own ``defs``/``names`` dicts (filled across calls, each definition named
    once for the whole document) and ``ref_prefix="#/components/schemas/"``;
    the result then has no ``$defs`` of its own."""
    from .validation import load_schema_file

    shared = defs is not None
    defs = {} if defs is None else defs
    names = {} if names is None else names

    def def_name(key):
        if key not in names:
            rel, pointer = key
            stem = posixpath.basename(rel).split(".")[0]
            base = pointer.rstrip("/").rsplit("/", 1)[-1] or stem
            name, n = base, 1
            # unique even once case and separators are dropped: code
            # generators turn flex_box and flexBox into one class FlexBox
            taken = {_folded(v) for v in names.values()}
            while _folded(name) in taken:
                # a numbered name, not <file>_<name>: a code generator names an
                # inline model <Parent><Property>, which messages_flex_box would meet
                n += 1
                name = "%s_%d" % (base, n)
            names[key] = name
        return names[key]

    def local_ref(ref, rel):
        file_part, _, pointer = ref.partition("#")
        target_rel = posixpath.normpath(posixpath.join(posixpath.dirname(rel), file_part)) if file_part else rel
        key = (target_rel, pointer)
        if key not in names:
            name = def_name(key)
            defs[name] = None  # reserved first: a definition may refer to itself
            defs[name] = walk(_pointer(load_schema_file(target_rel), pointer), target_rel)
        return ref_prefix + names[key]

    def walk(node, rel):
        if isinstance(node, list):
            return [walk(v, rel) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v, rel) for k, v in node.items()
               if k not in ("$ref", "$defs", "$id", "$schema", "discriminator")}
        if isinstance(node.get("$ref"), str):
            out["$ref"] = local_ref(node["$ref"], rel)
        spec = node.get("discriminator")
        if isinstance(spec, dict) and isinstance(spec.get("mapping"), dict):
            # the pack's own keyword (validation.py): the schema mapped to the
            # property's value applies; said in standard JSON Schema as if/then
            prop = spec["propertyName"]
            out["allOf"] = out.get("allOf", []) + [
                {"if": {"properties": {prop: {"const": value}}, "required": [prop]},
                 "then": {"$ref": local_ref(target, rel)}}
                for value, target in spec["mapping"].items()]
        return out

    result = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    result.update(walk(load_schema_file(relpath), relpath))
    if defs and not shared:
        result["$defs"] = defs
    return result


def without_file_inputs(schema):
    """``schema`` (an input schema, resolved) without the inputs that name a
    file on the server's machine, in ``properties`` and ``required``."""
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: v for k, v in out["properties"].items() if k not in FILE_INPUTS}
    if isinstance(out.get("required"), list):
        out["required"] = [k for k in out["required"] if k not in FILE_INPUTS]
        if not out["required"]:
            del out["required"]
    return out


def needs_a_file(schema):
    """True when the input schema *requires* a file input: such an action
    cannot be called over the service or MCP at all."""
    return any(k in FILE_INPUTS for k in schema.get("required", ()))


# ------------------------------------------------------------ OpenAPI

def openapi_schema(schema):
    """``schema`` (already resolved) as an OpenAPI 3.1 document carries it:
    the pack's keywords renamed to ``x-`` extensions (importers and strict
    validators refuse unknown keywords; the service still enforces them),
    ``maxUtf16Length: N`` also said as the standard ``maxLength: N`` (a
    string of at most N UTF-16 units has at most N code points: a bound that
    never refuses a valid value), an array with no ``items`` given ``items:
    {}`` (linters and code generators want one), and no ``title`` (the
    document names each component itself, and shared titles make code
    generators drop operations). Walks only schema positions: a property
    *named* ``finite`` stays as it is, and values of ``enum``, ``const``,
    ``default`` and ``examples`` are data, not schemas."""
    if isinstance(schema, list):
        return [openapi_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in CUSTOM_KEYWORDS:
            out[CUSTOM_KEYWORDS[key]] = copy.deepcopy(value)
        elif key == "title":
            continue
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: openapi_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_ONE or key in _SCHEMA_LIST:
            out[key] = openapi_schema(value)
        else:
            out[key] = copy.deepcopy(value)
    limit = schema.get("maxUtf16Length")
    if isinstance(limit, int) and not isinstance(limit, bool):
        current = out.get("maxLength")
        out["maxLength"] = limit if not isinstance(current, int) else min(current, limit)
    types = schema.get("type")
    if (types == "array" or (isinstance(types, list) and "array" in types)) \
            and "items" not in out and "prefixItems" not in out:
        out["items"] = {}
    return out


# ------------------------------------------------------------ MCP

#: what one tool's input schema may cost, in bytes of compact JSON: with the
#: tool's name, texts and annotations, ~101 tools stay under 96 KiB
MCP_SCHEMA_BUDGET = 700
#: a longer pattern (a UUID's, say) costs more than it tells an agent
_MCP_PATTERN = 40
#: a property description longer than this is cut at its first sentence
_MCP_DESCRIPTION = 160

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object",
               list: "array", type(None): "null"}
_BY_TYPE = {
    "string": ("minLength", "maxLength", "pattern"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "array": ("minItems", "maxItems", "uniqueItems"),
    "object": ("minProperties", "maxProperties"),
    "boolean": (), "null": (),
}


def _type_of_value(value):
    kind = _JSON_TYPES.get(type(value))
    return kind


def _fits(value, kind):
    found = _type_of_value(value)
    return found == kind or (kind == "number" and found == "integer")


def _short(text):
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    if len(text) > _MCP_DESCRIPTION:
        cut = text.find(". ")
        text = text[:cut + 1] if 0 < cut < _MCP_DESCRIPTION else text[:_MCP_DESCRIPTION - 3].rstrip() + "..."
    return text


class _McpRenderer:
    """Renders nodes of one resolved schema (with its ``$defs``) as compact
    standard JSON Schema, down to ``depth`` levels of properties."""

    def __init__(self, root, depth, descriptions):
        self.defs = root.get("$defs", {})
        self.depth = depth
        self.descriptions = descriptions

    def deref(self, node, seen=()):
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            name = node["$ref"][len("#/$defs/"):]
            if name in seen or name not in self.defs:
                return {}
            seen = seen + (name,)
            merged = dict(self.defs[name])
            merged.update({k: v for k, v in node.items() if k != "$ref"})
            node = merged
        return node

    def variants(self, node):
        """The alternatives a node stands for (oneOf/anyOf branches, or the
        schemas a discriminator's if/then picks), each dereferenced."""
        out = []
        for key in ("oneOf", "anyOf"):
            for branch in node.get(key, ()):
                out.append(self.flatten(branch))
        for part in node.get("allOf", ()):
            if isinstance(part, dict) and "then" in part:
                chosen = self.flatten(part["then"])
                cond = part.get("if", {}).get("properties", {}) if isinstance(part.get("if"), dict) else {}
                if cond:  # the condition says the discriminating value
                    props = dict(chosen.get("properties", {}))
                    for name, sub in cond.items():
                        props[name] = dict(self.deref(props.get(name, {})), **sub)
                    chosen = dict(chosen, properties=props)
                out.append(chosen)
        return out

    def flatten(self, node):
        """``node`` dereferenced, its plain ``allOf`` parts merged in."""
        node = dict(self.deref(node))
        for part in node.get("allOf", ()):
            part = self.deref(part)
            if isinstance(part, dict) and "then" not in part and "if" not in part:
                for key, value in part.items():
                    if key == "properties":
                        node["properties"] = dict(node.get("properties", {}), **value)
                    elif key == "required":
                        node["required"] = list(node.get("required", [])) + [r for r in value
                                                                             if r not in node.get("required", [])]
                    else:
                        node.setdefault(key, value)
        return node

    def kind(self, node, variants):
        types = node.get("type")
        if isinstance(types, list):
            types = next((t for t in types if t != "null"), types[0] if types else None)
        if isinstance(types, str):
            return types
        if "const" in node:
            return _type_of_value(node["const"])
        if isinstance(node.get("enum"), list) and node["enum"]:
            kinds = {_type_of_value(v) for v in node["enum"]}
            return kinds.pop() if len(kinds) == 1 else "string"
        if "properties" in node or "required" in node:
            return "object"
        if "items" in node or "prefixItems" in node:
            return "array"
        kinds = {self.kind(v, self.variants(v)) for v in variants}
        kinds.discard(None)
        if len(kinds) == 1:
            return kinds.pop()
        return "object" if "object" in kinds else (sorted(kinds)[0] if kinds else "object")

    def render(self, node, level):
        node = self.flatten(node)
        variants = self.variants(node)
        kind = self.kind(node, variants)
        out = {"type": kind}
        if self.descriptions and level <= 1:
            text = _short(node.get("description"))
            if text:
                out["description"] = text
        if "const" in node and _fits(node["const"], kind):
            out["const"] = node["const"]
        elif isinstance(node.get("enum"), list):
            values = [v for v in node["enum"] if _fits(v, kind)]
            if values:
                out["enum"] = values
        for key in _BY_TYPE.get(kind, ()):
            if key in node and (key != "pattern" or (level <= 1 and len(node[key]) <= _MCP_PATTERN)):
                out[key] = node[key]
        limit = node.get("maxUtf16Length")
        if kind == "string" and isinstance(limit, int):
            out["maxLength"] = min(limit, out.get("maxLength", limit))
        if "default" in node and _fits(node["default"], kind) and level <= 1:
            out["default"] = node["default"]
        if kind == "object" and level < self.depth:
            props, required = self.object_members(node, variants)
            if props:
                out["properties"] = {name: self.render(sub, level + 1) for name, sub in props.items()}
            if required:
                out["required"] = required
        elif kind == "array" and level < self.depth and isinstance(node.get("items"), dict):
            out["items"] = self.render(node["items"], level + 1)
        return out

    def object_members(self, node, variants):
        """The properties and required names to show: the node's own, and of
        alternatives only what every one of them has (a discriminator)."""
        props = dict(node.get("properties", {}))
        required = [r for r in node.get("required", ()) if isinstance(r, str)]
        with_props = [v for v in variants if isinstance(v.get("properties"), dict)]
        if with_props and len(with_props) == len(variants):
            common = set.intersection(*(set(v["properties"]) for v in with_props))
            for name in sorted(common):
                subs = [self.deref(v["properties"][name]) for v in with_props]
                consts = [s["const"] for s in subs if "const" in s]
                if len(consts) == len(subs):
                    props[name] = {"type": _type_of_value(consts[0]) or "string",
                                   "enum": list(dict.fromkeys(consts))}
                elif name not in props:
                    props[name] = subs[0]
                if all(name in v.get("required", ()) for v in variants) and name not in required:
                    required.append(name)
        return props, [r for r in required if r in props]


def _root_members(renderer, schema):
    """The root of a tool schema must be a plain object (function-calling
    clients refuse a combinator there): alternatives of the root (exactly
    one of groupId, roomId) are said as the union of their properties, and
    only what every alternative requires stays required."""
    node = renderer.flatten(schema)
    variants = renderer.variants(node)
    props = dict(node.get("properties", {}))
    required = list(node.get("required", ()))
    if variants:
        for v in variants:
            for name, sub in v.get("properties", {}).items():
                props.setdefault(name, sub)
        common = set.intersection(*(set(v.get("required", ())) for v in variants))
        required += [r for r in sorted(common) if r not in required]
    return props, required


def mcp_input_schema(relpath, budget=MCP_SCHEMA_BUDGET):
    """The input schema of ``schemas/<relpath>`` as an MCP tool's
    ``inputSchema``: the most detail that fits ``budget`` bytes (three
    levels of properties with descriptions, then without, then two levels,
    then one; the last is used whatever its size),
    file inputs left out. See the module docstring for what it keeps."""
    full = without_file_inputs(resolved_schema(relpath))
    rendered = None
    for depth, descriptions in ((3, True), (3, False), (2, True), (2, False), (1, False)):
        renderer = _McpRenderer(full, depth, descriptions)
        props, required = _root_members(renderer, full)
        props = {k: v for k, v in props.items() if k not in FILE_INPUTS}
        rendered = {"type": "object",
                    "properties": {name: renderer.render(sub, 1) for name, sub in props.items()}}
        required = [r for r in required if r in props]
        if required:
            rendered["required"] = required
        if len(json.dumps(rendered, separators=(",", ":"))) <= budget:
            break
    return rendered


__all__ = ["CUSTOM_KEYWORDS", "FILE_INPUTS", "MCP_SCHEMA_BUDGET", "mcp_input_schema", "needs_a_file",
           "openapi_schema", "resolved_schema", "without_file_inputs"]
