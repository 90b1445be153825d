"""What a user reads about an action at the terminal: ``line-connector
list`` (grouped by vendor and area) and ``line-connector describe ACTION``
(inputs, assets, a runnable example). Rendered from the manifest and the
input schemas, as the docs pages are (``line_connector.docs`` shares the
schema walking), so the two cannot disagree.
"""
import json

from .docs import CONSTRAINTS, _placeholders, _resolve, sandbox_command
from .validation import load_schema_file

VENDORS = (("line_", "LINE Messaging API"), ("nxcloud_", "NXCloud"), ("sobot_", "Sobot"))
#: action class module -> the area's label in `list`
AREAS = {"send": "send messages", "validate": "validate messages", "chat": "chat",
         "account": "quota and statistics", "insight": "insights", "info": "bot",
         "users": "users, groups and rooms", "content": "message content", "audience": "audiences",
         "richmenu": "rich menus", "webhook": "webhooks", "actions": "customer service"}


def vendor_of(spec):
    return next((label for prefix, label in VENDORS if spec.name.startswith(prefix)), "other")


def area_of(spec):
    module = spec.class_path.partition(":")[0].rpartition(".")[2]
    return AREAS.get(module, module)


def grouped(specs):
    """[(vendor, [(area, [spec, ...]), ...]), ...] in manifest order: the
    first action of a vendor or area places it."""
    vendors = {}
    for spec in specs:
        vendors.setdefault(vendor_of(spec), {}).setdefault(area_of(spec), []).append(spec)
    return [(vendor, list(areas.items())) for vendor, areas in vendors.items()]


def _plain_type(prop, raw):
    if "enum" in prop:
        shown = ", ".join(json.dumps(v) for v in prop["enum"][:8])
        return "one of " + shown + (", ..." if len(prop["enum"]) > 8 else "")
    if "const" in prop:
        return json.dumps(prop["const"])
    kind = prop.get("type", "object" if "properties" in prop or "allOf" in prop else "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    ref = raw.get("$ref") if isinstance(raw, dict) else None
    items = prop.get("items") if isinstance(prop.get("items"), dict) else None
    if kind == "array" and items is not None:
        name = items["$ref"].rpartition("/")[2] if "$ref" in items else items.get("type", "any")
        return "array of %s" % (name if isinstance(name, str) else " or ".join(name))
    if ref and kind in ("object", "any"):
        return "%s (%s)" % (kind, ref.rpartition("/")[2])
    return kind


def inputs_of(spec):
    """[{name, type, required, default?, limits, description}] of the action's inputs."""
    schema = load_schema_file(spec.inputs)
    required = set(schema.get("required", []))
    rows = []
    for name, raw in schema.get("properties", {}).items():
        prop, _base = _resolve(raw, spec.inputs)
        row = {"name": name, "type": _plain_type(prop, raw), "required": name in required,
               "limits": [fmt % prop[key] for key, fmt in CONSTRAINTS if key in prop],
               "description": " ".join((raw.get("description") or prop.get("description") or "").split())}
        if "default" in prop:
            row["default"] = prop["default"]
        rows.append(row)
    return rows


def example_of(spec):
    """The example: a command that runs as pasted against the embedded sandbox."""
    return sandbox_command(spec)


def describe(spec, as_json=False):
    from .manifest import manifest

    m = manifest()
    assets = [{"name": a, "fields": sorted(_placeholders(m.asset(a)))} for a in spec.assets]
    doc = {"name": spec.name, "title": spec.title, "vendor": vendor_of(spec), "area": area_of(spec),
           "description": " ".join(spec.description.split()), "inputs": inputs_of(spec), "assets": assets,
           "example": example_of(spec)}
    if as_json:
        return doc
    out = ["%s: %s (%s, %s)" % (spec.name, spec.title, doc["vendor"], doc["area"]), "", doc["description"], "",
           "Inputs:"]
    if not doc["inputs"]:
        out.append("  none")
    for row in doc["inputs"]:
        head = "  %s  %s, %s" % (row["name"], row["type"], "required" if row["required"] else "optional")
        if "default" in row:
            head += ", default %s" % json.dumps(row["default"], ensure_ascii=False)
        out.append(head)
        if row["limits"]:
            out.append("      limits: %s" % "; ".join(row["limits"]))
        if row["description"]:
            out.append("      %s" % row["description"])
    out += ["", "Assets (one of; pass it with --asset, or leave it out with --sandbox):"]
    for asset in assets:
        out.append("  %s  fields: %s" % (asset["name"], ", ".join(asset["fields"]) or "none"))
    out += ["", "Example (runs as pasted, against the embedded sandbox):", "  " + doc["example"], ""]
    return "\n".join(out)
