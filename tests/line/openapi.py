"""LINE's OpenAPI (tests/fixtures/line-openapi) as JSON Schema validators.

OpenAPI 3.0 schemas are nearly JSON Schema; what needs translating is the
``discriminator``, which JSON Schema does not act on. A schema with a
discriminator (``Message``) becomes ``Message__base`` (its own properties)
plus ``if type == X then Xschema`` clauses; subtypes that extend it
(``allOf: [$ref Message, ...]``) point at ``Message__base`` instead, so the
translation does not recurse forever.
"""
import copy
import os
from functools import lru_cache

import yaml
from jsonschema import Draft202012Validator

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_DIR = os.path.join(os.path.dirname(HERE), "fixtures", "line-openapi")


def _rewrite_refs(node, parents):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = value.replace("#/components/schemas/", "#/$defs/")
            elif key == "discriminator":
                continue
            else:
                out[key] = _rewrite_refs(value, parents)
        if "allOf" in out:
            out["allOf"] = [{"$ref": p["$ref"] + "__base"} if p.get("$ref", "").rpartition("/")[2] in parents else p
                            for p in out["allOf"]]
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, parents) for v in node]
    return node


@lru_cache(maxsize=None)
def definitions(filename):
    with open(os.path.join(SPEC_DIR, filename), encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)
    schemas = spec["components"]["schemas"]
    parents = {name for name, s in schemas.items() if "discriminator" in s}
    defs = {}
    for name, schema in schemas.items():
        translated = _rewrite_refs(copy.deepcopy(schema), parents)
        if name in parents:
            disc = schema["discriminator"]
            defs[name + "__base"] = translated
            key = disc["propertyName"]
            clauses = [{"if": {"properties": {key: {"const": value}}, "required": [key]},
                        "then": {"$ref": ref.replace("#/components/schemas/", "#/$defs/")}}
                       for value, ref in disc.get("mapping", {}).items()]
            defs[name] = {"allOf": [{"$ref": "#/$defs/%s__base" % name}] + clauses}
        else:
            defs[name] = translated
    return defs, schemas


def validator(name, filename="messaging-api.yml"):
    defs, _ = definitions(filename)
    return Draft202012Validator({"$defs": defs, "$ref": "#/$defs/" + name})


def discriminator_values(name, filename="messaging-api.yml"):
    _, schemas = definitions(filename)
    return set(schemas[name]["discriminator"]["mapping"])


def enum(name, filename="messaging-api.yml"):
    _, schemas = definitions(filename)
    return schemas[name]["enum"]
