"""The one validation path: JSON Schema files -> compiled validators -> errors
that name the field and the rule.

Schemas live in ``schemas/`` and refer to each other with relative ``$ref``s
(``../common/line_messages.json#/$defs/messages``). Each file is read once and
each validator is compiled once per process.

Rules JSON Schema lacks are added as keywords, so they stay in the data:

* ``maxUtf16Length``: LINE counts text length in UTF-16 code units, so an
  emoji outside the BMP counts 2, where ``maxLength`` would count 1.
* ``numericMaximum``: an upper bound for a number written as a digit string.
* ``discriminator`` (as in OpenAPI: ``{"propertyName", "mapping"}``): a
  union such as LINE's message object is checked against the one variant its
  ``type`` names, instead of probing every variant with ``if``/``then``
  (10x faster, and errors point into the right variant). An unknown value is
  reported by the union's own ``properties.<name>.enum``.
* format ``yyyymmdd``: a real calendar date written as 8 digits.

One keyword is given a faster implementation with the same meaning:
``items`` whose item schema is a plain string rule (type, pattern, length;
directly or through a ``$ref``) checks each item with a compiled regex and
only hands the failing ones to the full validator, so a multicast to
100,000 user IDs does not resolve a reference 100,000 times.

Error messages never quote the offending value: it may be a secret.
"""
import datetime
import json
import os
import re
from functools import lru_cache, partial
from pathlib import Path

from .errors import InputError, ManifestError
from .paths import SCHEMAS_DIR

MAX_DETAILS = 25


@lru_cache(maxsize=None)
def load_schema_file(relpath):
    """Parsed contents of ``schemas/<relpath>`` with ``$id`` set to its file URI."""
    path = os.path.join(SCHEMAS_DIR, relpath)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ManifestError("schema file not found: schemas/%s" % relpath) from None
    except ValueError as exc:
        raise ManifestError("schema file schemas/%s is not valid JSON: %s" % (relpath, exc)) from None
    if isinstance(data, dict):
        data.setdefault("$id", Path(path).resolve().as_uri())
    return data


@lru_cache(maxsize=None)
def _retrieve(uri):
    from referencing import Resource
    from referencing.jsonschema import DRAFT202012

    if not uri.startswith("file:"):
        raise ManifestError("schema reference outside the pack: %s" % uri)
    from urllib.parse import unquote, urlparse

    abspath = os.path.realpath(unquote(urlparse(uri).path))
    rel = os.path.relpath(abspath, os.path.realpath(SCHEMAS_DIR))
    return Resource.from_contents(load_schema_file(rel), default_specification=DRAFT202012)


def _utf16_len(text):
    return len(text.encode("utf-16-le")) // 2


def _max_utf16_length(validator, limit, instance, schema):
    if validator.is_type(instance, "string") and _utf16_len(instance) > limit:
        from jsonschema import ValidationError

        yield ValidationError("is longer than %d characters (UTF-16 units)" % limit)


def _numeric_maximum(validator, limit, instance, schema):
    """For numbers the vendor wants as digit strings (NXCloud's videoSize)."""
    if validator.is_type(instance, "string") and instance.isdigit() and int(instance) > limit:
        from jsonschema import ValidationError

        yield ValidationError("must be at most %d" % limit)


def _discriminator(validator, spec, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    value = instance.get(spec["propertyName"])
    ref = spec["mapping"].get(value) if isinstance(value, str) else None
    if ref is not None:
        yield from validator.descend(instance, {"$ref": ref})


# ------------------------------------------- items of plain strings (fast path)

_ANNOTATIONS = {"description", "title", "examples", "default", "$comment"}
_PLAIN_STRING_KEYS = {"type", "pattern", "minLength", "maxLength"} | _ANNOTATIONS
_ITEMS_ORIGIN = {}  # id(item schema) -> (item schema, file it is written in); see _referenced_files
_PLAIN_CHECKS = {}  # id(item schema) -> (item schema, check function or None)


def _resolve(relpath, ref):
    """The schema a ``$ref`` written in ``schemas/<relpath>`` points to,
    looked up the way the validator itself looks it up."""
    from referencing import Registry

    base = load_schema_file(relpath)["$id"]
    return Registry(retrieve=_retrieve).resolver(base_uri=base).lookup(ref).contents


def _plain_string_check(items):
    """For an item schema that is a plain string rule, a function giving the
    indexes of the items of a list that break it; None for any other schema
    (then every item is descended)."""
    cached = _PLAIN_CHECKS.get(id(items))
    if cached is not None and cached[0] is items:
        return cached[1]
    failing, target = None, items
    if set(items) - _ANNOTATIONS == {"$ref"}:
        from referencing.exceptions import Unresolvable

        origin, target = _ITEMS_ORIGIN.get(id(items)), None
        if origin is not None and origin[0] is items:
            try:
                target = _resolve(origin[1], items["$ref"])
            except (Unresolvable, ManifestError):
                pass  # left to the full validator, which reports it
    if isinstance(target, dict) and target.get("type") == "string" and set(target) <= _PLAIN_STRING_KEYS:
        search = re.compile(target.get("pattern", "")).search
        low, high = target.get("minLength", 0), target.get("maxLength", float("inf"))

        def failing(values):
            # the common case (every item fine) is decided by C-level loops
            if set(map(type, values)) <= {str} and all(map(search, values)) and (
                    not values or (min(map(len, values)) >= low and max(map(len, values)) <= high)):
                return []
            # type(x) is str: a str subclass is simply left to the full validator
            return [i for i, x in enumerate(values)
                    if type(x) is not str or not low <= len(x) <= high or search(x) is None]
    _PLAIN_CHECKS[id(items)] = (items, failing)
    return failing


def _items(full_items, validator, items, instance, schema):
    """``items`` with the plain-string fast path; ``full_items`` is
    jsonschema's own implementation, bound in by ``_validator_class``."""
    failing = _plain_string_check(items) if isinstance(items, dict) else None
    if failing is None or "prefixItems" in schema or not validator.is_type(instance, "array"):
        yield from full_items(validator, items, instance, schema)
        return
    for index in failing(instance):
        yield from validator.descend(instance[index], items, path=index)


@lru_cache(maxsize=1)
def _validator_class():
    from jsonschema import Draft202012Validator, FormatChecker, validators

    checker = FormatChecker(formats=("uuid", "date", "ipv4"))

    @checker.checks("yyyymmdd", raises=ValueError)
    def _is_yyyymmdd(value):
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{8}", value):
            return False
        datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return True

    cls = validators.extend(Draft202012Validator, {"maxUtf16Length": _max_utf16_length,
                                                       "numericMaximum": _numeric_maximum,
                                                       "discriminator": _discriminator,
                                                       "items": partial(_items, Draft202012Validator.VALIDATORS["items"])})
    return cls, checker


def _referenced_files(relpath, seen=None):
    """relpath and every schema file it reaches through $ref, transitively.

    The same walk notes which file each ``items`` schema is written in, so
    the fast path can resolve its ``$ref`` when it first meets it."""
    seen = set() if seen is None else seen
    if relpath in seen:
        return seen
    seen.add(relpath)
    stack = [load_schema_file(relpath)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("items"), dict):
                _ITEMS_ORIGIN[id(node["items"])] = (node["items"], relpath)
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                target = os.path.normpath(os.path.join(os.path.dirname(relpath), ref.partition("#")[0]))
                _referenced_files(target, seen)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def _registry_for(relpath):
    """A registry holding every file the schema refers to, so a validation
    never retrieves (and re-crawls) a file: registries are immutable, and
    one filled on demand would start empty again for every validation."""
    from referencing import Registry

    registry = Registry(retrieve=_retrieve)
    for rel in sorted(_referenced_files(relpath)):
        uri = load_schema_file(rel)["$id"]
        registry = registry.with_resource(uri, _retrieve(uri))
    return registry  # no crawl(): the schemas use plain pointers, no $anchor or nested $id


@lru_cache(maxsize=None)
def validator_for(relpath):
    """A compiled validator for ``schemas/<relpath>`` (cached).

    The schema itself is checked against the JSON Schema meta-schema by
    ``check_schema_file`` (``line-connector check`` and the tests), not on
    every start: the pack's schemas do not change at run time."""
    cls, checker = _validator_class()
    return cls(load_schema_file(relpath), registry=_registry_for(relpath), format_checker=checker)


def check_schema_file(relpath):
    """Raise ManifestError if ``schemas/<relpath>`` is not a valid JSON Schema."""
    cls, _ = _validator_class()
    try:
        cls.check_schema(load_schema_file(relpath))
    except Exception as exc:  # SchemaError: the pack's own bug
        raise ManifestError("schema schemas/%s is not a valid JSON Schema: %s"
                            % (relpath, getattr(exc, "message", exc))) from None


# ---------------------------------------------------------------- messages

def _join(prefix, parts):
    out = prefix
    for p in parts:
        out += "[%d]" % p if isinstance(p, int) else ("." + p if out else p)
    return out


def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean",
               int: "integer", float: "number", type(None): "null"}


def _describe(error):
    """(extra path parts, message) for one jsonschema error, value not quoted.

    A schema object may carry ``errorMessage``: it replaces the message of
    any keyword that fails in that same object (keep such objects small)."""
    v, val, inst = error.validator, error.validator_value, error.instance
    if isinstance(error.schema, dict) and error.schema.get("errorMessage"):
        return [], error.schema["errorMessage"]
    if v == "required":
        # one error per missing property; jsonschema names it (a key, not a value)
        named = re.match(r"^'((?:[^'\\]|\\.)*)' is a required property$", error.message)
        missing = [named.group(1)] if named else [p for p in val if isinstance(inst, dict) and p not in inst]
        return [missing[0] if missing else "?"], "is required"
    if v == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed) if isinstance(inst, dict) else []
        return [extra[0] if extra else "?"], "is not an allowed field"
    if v == "type":
        want = val if isinstance(val, str) else " or ".join(val)
        return [], "must be of type %s (got %s)" % (want, _TYPE_NAMES.get(type(inst), type(inst).__name__))
    if v == "minItems":
        return [], "must have at least %s (got %d)" % (_plural(val, "item"), len(inst))
    if v == "maxItems":
        return [], "must have at most %s (got %d)" % (_plural(val, "item"), len(inst))
    if v == "minLength":
        return [], "must be at least %s long" % _plural(val, "character")
    if v == "maxLength":
        return [], "must be at most %s long (got %d)" % (_plural(val, "character"), len(inst))
    if v == "uniqueItems":
        return [], "must not contain duplicate items"
    if v == "minProperties":
        return [], "must have at least %s" % _plural(val, "field")
    if v in ("enum", "const"):
        choices = val if v == "enum" else [val]
        return [], "must be one of %s" % ", ".join(json.dumps(c, ensure_ascii=False) for c in choices)
    if v == "pattern":
        return [], "must match the pattern %s" % val
    if v == "format":
        if val == "yyyymmdd":
            return [], "must be a real calendar date written yyyyMMdd (e.g. 20191231)"
        return [], "must be a valid %s" % val
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                 "exclusiveMaximum": "<", "multipleOf": "a multiple of"}
        return [], "must be %s %s" % (words[v], val)
    if v == "not" and isinstance(val, dict) and "required" in val:
        return [], "must not have %s" % " together with ".join(val["required"])
    if v in ("oneOf", "anyOf"):
        return [], "matches none of the allowed forms"
    if v in ("maxUtf16Length", "numericMaximum"):
        return [], error.message
    if v == "dependentRequired":
        for key, needs in val.items():
            if isinstance(inst, dict) and key in inst:
                for n in needs:
                    if n not in inst:
                        return [n], "is required when %s is given" % key
    return [], "violates the %s rule" % v


def errors_to_details(errors, prefix):
    details, seen = [], set()
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        extra, message = _describe(error)
        path = _join(prefix, list(error.absolute_path) + extra)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        details.append({"path": path, "message": message})
        if len(details) >= MAX_DETAILS:
            break
    return details


def iter_errors(relpath, instance):
    return validator_for(relpath).iter_errors(instance)


def validate(relpath, instance, prefix, what):
    """Raise InputError naming every bad field of ``instance``."""
    details = errors_to_details(iter_errors(relpath, instance), prefix)
    if details:
        raise InputError("invalid %s" % what, details)


def apply_defaults(schema, instance):
    """Fill top-level defaults of an object schema (a copy)."""
    out = dict(instance)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = prop["default"]
    return out


@lru_cache(maxsize=None)
def _dict_validator(key):
    from referencing import Registry

    cls, checker = _validator_class()
    return cls(_INLINE[key], registry=Registry(retrieve=_retrieve), format_checker=checker)


_INLINE = {}


def validator_for_inline(key, schema):
    """A compiled validator for a schema kept inline (an asset's inputs),
    cached under ``key``."""
    _INLINE.setdefault(key, schema)
    return _dict_validator(key)
