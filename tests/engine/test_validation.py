"""Validation errors name the field and the rule, and never quote values."""
import pytest

from line_connector.errors import InputError
from line_connector.validation import validate

from helpers import USER


def errors(inputs, schema="line/send_push.input.json"):
    with pytest.raises(InputError) as exc:
        validate(schema, inputs, "inputs", "inputs")
    return {d["path"]: d["message"] for d in exc.value.details}


def test_missing_and_wrong_types():
    e = errors({"messages": "hello", "notificationDisabled": "yes"})
    assert e["inputs.to"] == "is required"
    assert e["inputs.messages"] == "must be of type array (got string)"
    assert e["inputs.notificationDisabled"] == "must be of type boolean (got string)"


def test_message_count_limits():
    assert errors({"to": USER, "messages": []})["inputs.messages"] == "must have at least 1 item (got 0)"
    six = [{"type": "text", "text": "x"}] * 6
    assert errors({"to": USER, "messages": six})["inputs.messages"] == "must have at most 5 items (got 6)"


def test_text_length_counts_utf16_units():
    emoji = "\U0001F600"  # 1 code point, 2 UTF-16 units
    validate("line/send_push.input.json", {"to": USER, "messages": [{"type": "text", "text": emoji * 2500}]},
             "inputs", "inputs")
    e = errors({"to": USER, "messages": [{"type": "text", "text": emoji * 2500 + "a"}]})
    assert "UTF-16" in e["inputs.messages[0].text"]


def test_unknown_field_and_type_are_named():
    e = errors({"to": USER, "messages": [{"type": "text", "txt": "hi"}, {"type": "txet"}]})
    assert e["inputs.messages[0].text"] == "is required"
    assert e["inputs.messages[1].type"].startswith("must be one of")
    e = errors({"to": USER, "messages": [{"type": "text", "text": "hi", "colour": 1}]})
    assert e["inputs.messages[0].colour"] == "is not an allowed field"


def test_values_are_never_quoted():
    secret_like = "s3cr3t-value-that-must-not-echo"
    e = errors({"to": secret_like, "messages": [{"type": "text", "text": 5}], "retry_key": secret_like})
    assert secret_like not in repr(e)
    assert "inputs.retry_key" in e and "inputs.to" in e


def test_plain_string_items_fast_path_reports_what_full_validation_reports():
    """Arrays of plain strings (user IDs, phones) skip per-item descent for the
    items that pass; the failing ones must still be reported exactly as
    jsonschema's own ``items`` reports them."""
    from jsonschema import Draft202012Validator, validators

    from line_connector.validation import _registry_for, _validator_class, load_schema_file, validator_for

    bad = [USER, "U123", 42, None, USER.upper(), "x" * 5000, USER]
    cases = [("line/send_multicast.input.json",
              {"to": bad, "messages": [{"type": "text", "text": "hi"}]}),
             ("nxcloud/send_super_message.input.json",
              {"appkey": "k", "phones": ["85212345678", "+852", 7, "852 1234", "85212345678"],
               "message": {"textMessage": {"text": "hi"}}})]
    fast_cls, checker = _validator_class()
    slow_cls = validators.extend(fast_cls, {"items": Draft202012Validator.VALIDATORS["items"]})
    for schema, inputs in cases:
        def found(v):
            return sorted((list(map(str, e.absolute_path)), e.validator, e.message) for e in v.iter_errors(inputs))
        fast = found(validator_for(schema))
        slow = found(slow_cls(load_schema_file(schema), registry=_registry_for(schema), format_checker=checker))
        assert fast == slow and len(fast) >= 3, (schema, fast)
    e = errors(cases[0][1], "line/send_multicast.input.json")
    assert e["inputs.to[1]"].startswith("must match the pattern")
    assert e["inputs.to[2]"] == "must be of type string (got integer)"
    assert e["inputs.to[3]"] == "must be of type string (got null)"
    assert "inputs.to[0]" not in e and "inputs.to[6]" not in e


def test_patterns_end_where_json_schema_says_they_end():
    """JSON Schema patterns are ECMA-262 regexes: ``$`` matches only at the
    very end (https://json-schema.org/draft/2020-12/json-schema-validation#section-6.3.3,
    ECMA-262 Assertion ``$`` without the multiline flag). Python's ``$``
    also matches before a final newline, which let ``"U...\\n"`` into a
    request body; both validation paths (one item, a list of plain strings)
    must refuse it, naming the item."""
    from line_connector import InputError, run_action
    from line_connector.validation import ecma_search

    user = "U" + "a" * 32
    assert ecma_search("^U[0-9a-f]{32}$")(user) and not ecma_search("^U[0-9a-f]{32}$")(user + "\n")
    assert ecma_search(r"^[$]\$$")("$$")  # a $ in a class or escaped is a character
    text = [{"type": "text", "text": "x"}]
    for action, inputs, path in (
            ("line_send_push", {"to": user + "\n", "messages": text}, "inputs.to"),
            ("line_send_multicast", {"to": [user, user + "\n"], "messages": text}, "inputs.to[1]"),
            ("line_link_rich_menu", {"richMenuId": "richmenu-" + "0" * 32, "userIds": [user] * 3 + [user + "\n"]},
             "inputs.userIds[3]")):
        with pytest.raises(InputError) as exc:
            run_action(action, {"token": "t", "url": "http://127.0.0.1:9"}, inputs, dry_run=True)
        assert path in [d["path"] for d in exc.value.details], exc.value.details
