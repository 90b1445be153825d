"""Generates the action reference (docs/actions/*.md) from the manifest and
the schemas, so the docs cannot drift from what the pack accepts.

    line-connector docs            # rewrite docs/
    line-connector docs --check    # exit 1 if docs/ is out of date (CI)
"""
import json
import os
import posixpath

from .manifest import manifest
from .validation import load_schema_file

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


def _type_of(prop):
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
        inner = items.get("type") or (items.get("$ref", "").rpartition("/")[2] or "any")
        return "array of %s" % inner
    return kind


def _rules(prop):
    rules = [fmt % prop[key] for key, fmt in CONSTRAINTS if key in prop]
    if "default" in prop:
        rules.append("default `%s`" % json.dumps(prop["default"]))
    return "; ".join(rules)


def _cell(text):
    return (text or "").replace("|", "\\|").replace("\n", " ").strip()


def action_page(spec):
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
            prop, _ = _resolve(raw, spec.inputs)
            lines.append("| `%s` | %s | %s | %s | %s |" % (
                name, _cell(_type_of(prop)), "yes" if name in required else "no",
                _cell(_rules(prop)), _cell(prop.get("description", ""))))
    else:
        lines.append("None.")
    lines += ["", "Schema: `schemas/%s`" % spec.inputs, "", "## Output", ""]
    out = load_schema_file(spec.outputs)
    lines.append(_cell(out.get("description", "")))
    result = out.get("$defs", {}).get("result")
    if result:
        lines += ["", "| field | description |", "|---|---|"]
        for name, prop in result["properties"].items():
            lines.append("| `%s` | %s |" % (name, _cell(prop.get("description", _type_of(prop)))))
    elif out.get("properties"):
        lines += ["", "| field | type | description |", "|---|---|---|"]
        for name, prop in out["properties"].items():
            lines.append("| `%s` | %s | %s |" % (name, _cell(_type_of(prop)), _cell(prop.get("description", ""))))
    lines += ["", "Schema: `schemas/%s`" % spec.outputs, ""]
    if spec.example is not None:
        payload = json.dumps({"asset": {"...": "..."}, "inputs": spec.example}, ensure_ascii=False, indent=2)
        lines += ["## Example", "", "```", "line-connector run %s <<'EOF'" % spec.name, payload, "EOF", "```", "",
                  "Try it with no account: `line-connector run %s --sandbox`, with `{\"inputs\": ...}` on stdin."
                  % spec.name, ""]
    return "\n".join(lines)


def index_page(m):
    lines = ["# Action reference", "", "Generated from `connector.yaml` and `schemas/` by "
             "`line-connector docs`; CI fails when it is out of date.", "",
             "| action | title | assets |", "|---|---|---|"]
    for spec in m.actions.values():
        lines.append("| [`%s`](%s.md) | %s | %s |" % (spec.name, spec.name, _cell(spec.title),
                                                     ", ".join(spec.assets)))
    return "\n".join(lines) + "\n"


def render():
    """{relative path: text} of every generated page."""
    m = manifest()
    pages = {"actions/README.md": index_page(m)}
    for spec in m.actions.values():
        pages["actions/%s.md" % spec.name] = action_page(spec)
    return pages


def write(out_dir):
    pages = render()
    target = os.path.join(out_dir, "actions")
    os.makedirs(target, exist_ok=True)
    for old in os.listdir(target):
        if old.endswith(".md") and "actions/" + old not in pages:
            os.remove(os.path.join(target, old))
    for rel, text in pages.items():
        with open(os.path.join(out_dir, rel), "w", encoding="utf-8") as fh:
            fh.write(text)
    return sorted(pages)


def stale(out_dir):
    """Paths under out_dir that differ from what render() produces."""
    pages = render()
    bad = []
    for rel, text in pages.items():
        path = os.path.join(out_dir, rel)
        try:
            with open(path, encoding="utf-8") as fh:
                if fh.read() != text:
                    bad.append(rel)
        except FileNotFoundError:
            bad.append(rel)
    target = os.path.join(out_dir, "actions")
    if os.path.isdir(target):
        bad += ["actions/" + f for f in os.listdir(target) if f.endswith(".md") and "actions/" + f not in pages]
    return sorted(bad)
