"""Generates the action reference (docs/actions/*.md) from the manifest and
the schemas, so the docs cannot drift from what the pack accepts.

    line-connector docs                      # rewrite docs/actions/
    line-connector docs --out DIR            # write the pages into DIR itself
    line-connector docs --check              # exit 1 if docs/actions/ is out of date (CI)

``--out DIR`` is the directory the pages land in (``DIR/README.md``,
``DIR/ACTION.md``), never a parent of it: what you name is where they are.

Every page carries one example a reader can paste as is: a ``sh`` block that
pipes the manifest's ``example`` inputs into ``line-connector run ACTION
--sandbox`` (tests/engine/test_docs.py runs each one, so a stale page fails
CI), then the same call with a real asset whose secrets are typed
placeholders. Links to schemas are relative to ``docs/actions/`` in the
repository, the one place the pages are published from.
"""
import json
import os
import posixpath

from .manifest import manifest
from .validation import load_schema_file

DEFAULT_OUT = os.path.join("docs", "actions")
SCHEMAS_LINK = "../../schemas/"  # from docs/actions/ to the repository's schemas/
LINE_REFERENCE = "https://developers.line.biz/en/reference/messaging-api/"
# Definitions whose shape LINE documents: the type cell links to LINE's own page too.
LINE_ANCHORS = {"message": "#message-objects", "messages": "#message-objects",
                "recipient": "#send-narrowcast-message", "filter": "#send-narrowcast-message",
                "limit": "#send-narrowcast-message"}

CONSTRAINTS = (("minItems", "at least %s item(s)"), ("maxItems", "at most %s item(s)"),
               ("minLength", "at least %s characters"), ("maxLength", "at most %s characters"),
               ("maxUtf16Length", "at most %s UTF-16 units"), ("minimum", ">= %s"), ("maximum", "<= %s"),
               ("multipleOf", "multiple of %s"), ("pattern", "pattern `%s`"), ("format", "format %s"))


def _resolve(node, base):
    """Follow a local or relative $ref; returns (schema, file it lives in)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 10:
        target, _, pointer = node["$ref"].partition("#")
        extra = {k: v for k, v in node.items() if k != "$ref"}
        if target:
            base = posixpath.normpath(posixpath.join(posixpath.dirname(base), target))
        doc = load_schema_file(base)
        for part in filter(None, pointer.split("/")):
            doc = doc[part]
        node = dict(doc, **extra)
        seen += 1
    return node, base


def _ref_link(ref, base):
    """Markdown for what a $ref names: the definition, linked to its schema
    file (and to LINE's reference where LINE documents that object)."""
    target, _, pointer = ref.partition("#")
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base), target)) if target else base
    name = pointer.rpartition("/")[2] or load_schema_file(path).get("title", path)
    text = "[%s](%s%s)" % (name, SCHEMAS_LINK, path)
    anchor = LINE_ANCHORS.get(name) if path.startswith("line/") else None
    if anchor:
        text += " ([LINE reference](%s%s))" % (LINE_REFERENCE, anchor)
    return text


def _type_of(prop, base, raw=None, raw_base=None):
    """The type cell. ``prop`` lives in schema file ``base``; ``raw`` is the
    property before its $ref was followed, in ``raw_base``."""
    if "enum" in prop:
        return "one of " + ", ".join("`%s`" % json.dumps(v) for v in prop["enum"][:12]) + \
            (" ..." if len(prop["enum"]) > 12 else "")
    if "const" in prop:
        return "`%s`" % json.dumps(prop["const"])
    kind = prop.get("type", "object" if "properties" in prop or "allOf" in prop else "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(prop.get("items"), dict):
        items = prop["items"]
        if "$ref" in items:
            return "array of %s" % _ref_link(items["$ref"], base)
        return "array of %s" % _type_of(items, base)
    if isinstance(raw, dict) and "$ref" in raw and kind in ("object", "any"):
        return "%s: %s" % (kind, _ref_link(raw["$ref"], raw_base or base))
    return kind


def _rules(prop):
    rules = [fmt % prop[key] for key, fmt in CONSTRAINTS if key in prop]
    if "default" in prop:
        rules.append("default `%s`" % json.dumps(prop["default"]))
    return "; ".join(rules)


def _cell(text):
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def _sh_quote(text):
    """``text`` as one single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _placeholders(asset):
    """The asset's required fields, each a typed placeholder: "<channel access token>"."""
    schema = asset.schema
    props = schema.get("properties", {})
    return {name: "<%s>" % props.get(name, {}).get("title", name).lower() for name in schema.get("required", [])}


def sandbox_command(spec):
    """The one-liner a reader pastes: example inputs piped into --sandbox."""
    payload = json.dumps({"inputs": spec.example if spec.example is not None else {}}, ensure_ascii=False)
    return "echo %s | line-connector run %s --sandbox" % (_sh_quote(payload), spec.name)


def _example(spec, m):
    asset = m.asset(spec.assets[0])
    real = json.dumps({"asset": _placeholders(asset), "inputs": spec.example if spec.example is not None else {}},
                      ensure_ascii=False, indent=2)
    others = ""
    if len(spec.assets) > 1:
        others = " (or any of: %s)" % ", ".join("`%s`" % a for a in spec.assets[1:])
    return ["## Example", "",
            "Try it with no account: `--sandbox` starts the embedded emulator and uses its own "
            "credentials (leave the asset out). Exit 0, the result on stdout:", "",
            "```sh", sandbox_command(spec), "```", "",
            "With your own `%s` asset%s, replacing each `<...>`:" % (spec.assets[0], others), "",
            "```sh", "line-connector run %s <<'EOF'" % spec.name, real, "EOF", "```", ""]


#: result fields every action's results may carry (the transport's: SPEC section 4)
COMMON_RESULT_FIELDS = ("status_code", "reason", "response_headers", "json_body", "ok", "attempts", "note",
                        "raw_body", "raw_body_truncated", "error", "delivery")


def result_fields(spec, names):
    """The fields of the shared result schema that ``spec``'s results can
    carry, in the schema's order: the common ones, then those its class and
    inputs give it (LINE's request ID; a retry key on sends that take one;
    chunk fields on chunked sends; the vendor code of NXCloud and Sobot;
    paging on all_pages queries), then those whose description names the
    action (``line_get_message_content: ...``)."""
    from .action import ChunkedAction

    cls = spec.load_class()
    inputs = load_schema_file(spec.inputs).get("properties", {})
    vendor = spec.name.split("_", 1)[0]
    given = {"request_id": vendor == "line", "retry_key": bool(getattr(cls, "retry_key", False)),
             "accepted_request_id": bool(getattr(cls, "retry_key", False)),
             "chunk": issubclass(cls, ChunkedAction), "chunks": issubclass(cls, ChunkedAction),
             "recipients": issubclass(cls, ChunkedAction), "vendor_code": vendor in ("nxcloud", "sobot"),
             "all_items": "all_pages" in inputs, "pages_fetched": "all_pages" in inputs,
             "throttled_ms": vendor == "line"}
    keep = []
    for name, description in names:
        if name in COMMON_RESULT_FIELDS or given.get(name) or _owned_by(spec, cls, description):
            keep.append(name)
    return keep


def _owned_by(spec, cls, description):
    """Does a field described as ``"action_a, action_b ...: text"`` belong to
    ``spec``: named there, or its class extends a named action's class (the
    rich menu image download and the content preview stream as
    ``line_get_message_content`` does, and return its fields)?"""
    head = (description or "").split(":", 1)[0]
    owners = [part.strip().split(" ", 1)[0] for part in head.split(",")]
    if spec.name in owners:
        return True
    actions = manifest().actions
    return any(o in actions and o != spec.name and issubclass(cls, actions[o].load_class()) for o in owners)


def _output(spec):
    out = load_schema_file(spec.outputs)
    lines = ["## Output", ""]
    description = out.get("description") or "One JSON object (%s)." % out.get("title", "see the schema")
    lines.append(_cell(description))
    result = out.get("$defs", {}).get("result")
    if result:
        lines += ["", "| field | description |", "|---|---|"]
        shown = set(result_fields(spec, [(n, p.get("description")) for n, p in result["properties"].items()]))
        for name, prop in result["properties"].items():
            if name not in shown:
                continue
            lines.append("| `%s` | %s |" % (name, _cell(prop.get("description") or _type_of(prop, spec.outputs))))
    elif out.get("properties"):
        lines += ["", "| field | type | description |", "|---|---|---|"]
        for name, raw in out["properties"].items():
            prop, base = _resolve(raw, spec.outputs)
            desc = raw.get("description") or prop.get("description", "")
            items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
            if not desc and items.get("properties"):  # say what each item holds
                desc = "Each with: " + ", ".join("`%s`" % k for k in items["properties"])
            lines.append("| `%s` | %s | %s |" % (name, _cell(_type_of(prop, base, raw, spec.outputs)), _cell(desc)))
    lines += ["", "Schema: [`schemas/%s`](%s%s)" % (spec.outputs, SCHEMAS_LINK, spec.outputs), ""]
    return lines


def action_page(spec, m=None):
    m = m or manifest()
    schema = load_schema_file(spec.inputs)
    required = set(schema.get("required", []))
    lines = ["# %s" % spec.name, "", "**%s**" % spec.title, "", spec.description.strip(), ""]
    cls = spec.load_class()
    method, path = getattr(cls, "method", None), getattr(cls, "path", None)
    if path:
        lines += ["Endpoint: `%s %s`" % (method, path), ""]
    lines += ["Assets: " + ", ".join("`%s`" % a for a in spec.assets), "", "## Inputs", ""]
    props = schema.get("properties", {})
    if props:
        lines += ["| name | type | required | rules | description |", "|---|---|---|---|---|"]
        for name, raw in props.items():
            prop, base = _resolve(raw, spec.inputs)
            lines.append("| `%s` | %s | %s | %s | %s |" % (
                name, _cell(_type_of(prop, base, raw, spec.inputs)), "yes" if name in required else "no",
                _cell(_rules(prop)), _cell(prop.get("description", ""))))
    else:
        lines.append("None.")
    lines += ["", "Schema: [`schemas/%s`](%s%s)" % (spec.inputs, SCHEMAS_LINK, spec.inputs), ""]
    lines += _output(spec)
    lines += _example(spec, m)
    return "\n".join(lines)


def index_page(m):
    lines = ["# Action reference", "", "Generated from `connector.yaml` and `schemas/` by "
             "`line-connector docs`; CI fails when it is out of date. Every page's sandbox example "
             "runs as pasted (CI runs each one).", "",
             "| action | title | assets |", "|---|---|---|"]
    for spec in m.actions.values():
        lines.append("| [`%s`](%s.md) | %s | %s |" % (spec.name, spec.name, _cell(spec.title),
                                                     ", ".join(spec.assets)))
    return "\n".join(lines) + "\n"


def render():
    """{file name: text} of every generated page (all in one directory)."""
    m = manifest()
    pages = {"README.md": index_page(m)}
    for spec in m.actions.values():
        pages["%s.md" % spec.name] = action_page(spec, m)
    return pages


def write(out_dir=DEFAULT_OUT):
    """Write the pages into ``out_dir`` and remove generated pages of actions
    that no longer exist; returns the file names written."""
    pages = render()
    os.makedirs(out_dir, exist_ok=True)
    for old in _orphans(out_dir, pages):
        os.remove(os.path.join(out_dir, old))
    for name, text in pages.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return sorted(pages)


def _orphans(out_dir, pages):
    """Pages in out_dir that look generated (a vendor-prefixed action name)
    but whose action is gone. Other files there are the user's and stay."""
    prefixes = tuple(n.split("_", 1)[0] + "_" for n in pages if n != "README.md")
    if not os.path.isdir(out_dir):
        return []
    return sorted(f for f in os.listdir(out_dir)
                  if f.endswith(".md") and f not in pages and f.startswith(prefixes))


def stale(out_dir=DEFAULT_OUT):
    """File names under out_dir that differ from what render() produces."""
    pages = render()
    bad = []
    for name, text in pages.items():
        try:
            with open(os.path.join(out_dir, name), encoding="utf-8") as fh:
                if fh.read() != text:
                    bad.append(name)
        except FileNotFoundError:
            bad.append(name)
    return sorted(bad + _orphans(out_dir, pages))
