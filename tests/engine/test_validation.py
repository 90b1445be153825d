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
