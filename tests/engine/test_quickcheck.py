"""The quick validity check (line_connector.quickcheck) never says "valid"
where the full JSON Schema validator (jsonschema, draft 2020-12, with the
pack's keywords) finds an error: it runs on every action's example inputs,
on every asset's demo fields, and on thousands of mutations of them (each
field dropped, each value replaced by values of every JSON type and of
hostile shapes), and each of its "valid" verdicts is compared with the full
validator's."""
import copy
import itertools

import pytest

from line_connector import quickcheck
from line_connector.manifest import manifest
from line_connector.validation import _dict_validator, _INLINE, load_schema_file, validator_for

USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
MESSAGES = [
    {"type": "text", "text": "hello"},
    {"type": "text", "text": "$ hi $", "emojis": [{"index": 0, "productId": "5ac1bfd5040ab15980c9b435",
                                                   "emojiId": "001"}]},
    {"type": "sticker", "packageId": "446", "stickerId": "1988"},
    {"type": "image", "originalContentUrl": "https://example.com/a.jpg",
     "previewImageUrl": "https://example.com/a.jpg"},
    {"type": "location", "title": "t", "address": "a", "latitude": 35.6, "longitude": 139.7},
    {"type": "template", "altText": "t", "template": {"type": "confirm", "text": "ok?", "actions": [
        {"type": "message", "label": "yes", "text": "yes"}, {"type": "message", "label": "no", "text": "no"}]}},
    {"type": "template", "altText": "c", "template": {"type": "carousel", "columns": [
        {"text": "a", "actions": [{"type": "postback", "label": "p", "data": "d", "displayText": "x"}]},
        {"text": "b", "actions": [{"type": "uri", "label": "u", "uri": "https://example.com"}]}]}},
    {"type": "flex", "altText": "f", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical",
                                                                             "contents": [{"type": "text",
                                                                                           "text": "hi"}]}}},
]
HOSTILE = [None, True, False, 0, 1, -1, 2 ** 63, 1.5, 2.0, -0.0, 1e308, "", "x", "x" * 5001,
           "\U0001F468\u200D\U0001F469\u200D\U0001F467" * 120, "2023-02-31", "2023-02-28", "20231231",
           "U" + "0" * 32, "U" + "0" * 32 + "\n", "https://example.com/a.jpg", "http://x", "\u00b2", "12",
           [], [None], ["a", "a"], [USER] * 3, {}, {"type": "text"}, {"type": "text", "text": "t"}]


def _samples(value, depth=0):
    """``value`` and mutations of it: each key dropped, each value replaced."""
    yield value
    if depth > 3:
        return
    if isinstance(value, dict):
        for key in list(value):
            dropped = dict(value)
            del dropped[key]
            yield dropped
            for sub in itertools.islice(_samples(value[key], depth + 1), 40):
                yield dict(value, **{key: sub})
            for bad in HOSTILE:
                yield dict(value, **{key: bad})
        yield dict(value, unexpected_field=1)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value[:3]):
            for sub in itertools.islice(_samples(item, depth + 1), 40):
                yield value[:i] + [sub] + value[i + 1:]
        yield value + value
        yield []
    else:
        yield from HOSTILE


def _agree(predicate, instance, full):
    try:
        quick = predicate(instance) is True
    except quickcheck.Unsure:
        return None
    if quick:
        errors = [e.message for e in full.iter_errors(instance)]
        assert not errors, "quick check said valid, the full validator: %s" % errors
    return quick


def _inputs_corpus(spec):
    base = copy.deepcopy(spec.example) if spec.example else {}
    corpus = [base, {}]
    if "messages" in load_schema_file(spec.inputs).get("properties", {}):
        for message in MESSAGES:
            corpus.append(dict(base, messages=[message]))
    return corpus


@pytest.mark.parametrize("name", sorted(manifest().actions))
def test_a_quick_yes_is_always_a_full_yes_for_every_action(name):
    spec = manifest().action(name)
    predicate = quickcheck.Compiler(load_schema_file).document(spec.inputs)
    full = validator_for(spec.inputs)
    verdicts = [_agree(predicate, sample, full)
                for base in _inputs_corpus(spec) for sample in itertools.islice(_samples(base), 3000)]
    if spec.example:
        # the quick path is really taken for a valid input (else it saves nothing)
        assert verdicts[0] is True, "the quick check does not accept %s's example" % name


@pytest.mark.parametrize("asset_name", sorted(manifest().asset_names))
def test_a_quick_yes_is_always_a_full_yes_for_every_asset(asset_name):
    schema = manifest().asset(asset_name).schema
    predicate = quickcheck.Compiler(load_schema_file).document(None, schema)
    _INLINE.setdefault("asset:" + asset_name, schema)
    full = _dict_validator("asset:" + asset_name)
    demo = {key: "sandbox-value" for key in schema.get("required", ())}
    demo.update({key: prop["default"] for key, prop in schema.get("properties", {}).items()
                 if isinstance(prop, dict) and "default" in prop})
    for sample in itertools.islice(_samples(demo), 3000):
        _agree(predicate, sample, full)


def test_what_it_cannot_decide_is_left_to_the_full_validator():
    compiler = quickcheck.Compiler(load_schema_file)
    with pytest.raises(quickcheck.Unsure):
        compiler.compile({"unknownKeyword": 1}, None, {})
    with pytest.raises(quickcheck.Unsure):
        compiler.compile({"enum": [{"a": 1}]}, None, {})({"a": 1})
    with pytest.raises(quickcheck.Unsure):
        compiler.compile({"maxGraphemes": 3}, None, {})("abcd")  # segmenting is the full validator's
    assert compiler.compile({"maxGraphemes": 3}, None, {})("abc") is True
    # True is not 1 and 1 is 1.0, as in jsonschema
    assert compiler.compile({"const": 1}, None, {})(True) is False
    assert compiler.compile({"const": 1}, None, {})(1.0) is True
    # ECMA-262 "$": no final newline slips through
    assert compiler.compile({"pattern": "^U[0-9a-f]{32}$"}, None, {})("U" + "0" * 32 + "\n") is False
