"""LINE's message rules, judged by LINE's reference rather than by our schema.

Every case of the labelled corpus (tests/line/message_corpus.py, each citing
the developers.line.biz reference anchor its label comes from) must get our
verdict equal to its label: no false refusal (a message LINE accepts that we
refuse) and no false acceptance (one LINE would answer 400 that we let
through). Then the grapheme-cluster keyword itself, and the error messages.
"""
import json
import math
import os
import subprocess
import sys

import pytest

from helpers import USER
from line_connector import run_action
from line_connector.errors import InputError
from line_connector.validation import (errors_to_details, grapheme_count, iter_errors, load_schema_file,
                                       validator_for_inline)
from message_corpus import CASES, FAMILY, FLAG
from openapi import validator as openapi_validator

PUSH = "line/send_push.input.json"
BY_ID = {case["id"]: case for case in CASES}


def push_errors(messages):
    return list(iter_errors(PUSH, {"to": USER, "messages": messages}))


def details(messages):
    return errors_to_details(push_errors(messages), "inputs")


# ------------------------------------------------------------------ the corpus

def test_corpus_is_large_labelled_and_cited():
    assert len(CASES) >= 150
    assert len(BY_ID) == len(CASES), "case ids must be unique"
    for case in CASES:
        assert set(case) == {"id", "messages", "valid", "rule", "source"}, case["id"]
        assert isinstance(case["valid"], bool) and case["rule"], case["id"]
        assert case["source"].startswith("https://developers.line.biz/en/"), case["id"]
        assert "#" in case["source"] or "text-character-count" in case["source"], case["id"]
        assert 1 <= len(case["messages"]) <= 6, case["id"]
        json.dumps(case["messages"])  # a push body as it goes on the wire
    assert sum(c["valid"] for c in CASES) >= 50 and sum(not c["valid"] for c in CASES) >= 50


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_corpus_covers_every_message_type_action_type_and_flex_component():
    defs = load_schema_file("line/messages.json")["$defs"]
    messages = [m for case in CASES for m in case["messages"]]
    assert {m.get("type") for m in messages} >= set(defs["message"]["properties"]["type"]["enum"])
    templates = {m["template"]["type"] for m in messages if m.get("type") == "template" and "template" in m}
    assert templates >= {"buttons", "confirm", "carousel", "image_carousel"}
    nodes = [n for m in messages for n in _walk(m)]
    flex = {n["type"] for m in messages if m.get("type") == "flex" for n in _walk(m.get("contents"))
            if isinstance(n.get("type"), str)}
    assert flex >= set(defs["flexComponent"]["properties"]["type"]["enum"]) | {"bubble", "carousel"}
    # every action type, valid in at least one context, and refused in one it is not allowed in
    for kind in defs["action"]["properties"]["type"]["enum"]:
        labelled = {BY_ID[i]["valid"] for i in BY_ID if i.endswith("_action_" + kind)}
        assert True in labelled or kind == "richmenuswitch", kind
        assert False in labelled or kind in ("postback", "message", "uri", "datetimepicker", "clipboard"), kind
    assert any(n.get("type") == "richmenuswitch" for n in nodes)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_our_verdict_equals_lines_label(case):
    found = details(case["messages"])
    if case["valid"]:
        assert found == [], "false refusal of %s (%s, %s): %s" % (case["id"], case["rule"], case["source"], found)
    else:
        assert found, "false acceptance of %s (%s, %s)" % (case["id"], case["rule"], case["source"])


def test_lines_openapi_accepts_every_case_the_reference_accepts():
    """The OpenAPI is looser than the reference, never stricter: a valid
    case it refused would mean a label (or the OpenAPI translation) is wrong."""
    check = openapi_validator("Message")
    refused = [c["id"] for c in CASES if c["valid"] for m in c["messages"] if list(check.iter_errors(m))]
    assert refused == []


# Where LINE's OpenAPI is stricter than LINE's reference, the reference wins;
# each exclusion cites the reference statement that overrides the OpenAPI.
OPENAPI_STRICTER_THAN_REFERENCE = {}


def test_every_case_lines_openapi_refuses_is_labelled_invalid():
    """The reverse direction: a case LINE's own OpenAPI refuses must not be
    labelled valid (that would be a label we invented, or a rule we lack)."""
    check = openapi_validator("Message")
    refused = {c["id"] for c in CASES for m in c["messages"] if list(check.iter_errors(m))}
    wrongly_valid = sorted(i for i in refused if BY_ID[i]["valid"] and i not in OPENAPI_STRICTER_THAN_REFERENCE)
    assert wrongly_valid == []
    assert refused, "the OpenAPI validator refuses nothing: it is not checking"


@pytest.mark.parametrize("case_id", ["message_label_20_family", "bad_buttons_title_text_61",
                                     "carousel_unequal_actions", "quick_reply_action_richmenuswitch"])
def test_the_pack_action_gives_the_same_verdict_before_sending(case_id):
    case = BY_ID[case_id]
    inputs = {"to": USER, "messages": case["messages"]}
    if case["valid"]:
        (request,) = run_action("line_send_push", {"token": "t" * 20}, inputs, dry_run=True)
        assert request["body"]["messages"] == case["messages"]
    else:
        with pytest.raises(InputError) as info:
            run_action("line_send_push", {"token": "t" * 20}, inputs, dry_run=True)
        assert info.value.details and all(d["path"].startswith("inputs.messages[0]") for d in info.value.details)


# ------------------------------------------------------------ grapheme clusters

@pytest.mark.parametrize("text,expected", [
    ("", 0), ("abc", 3), (FAMILY, 1), (FLAG * 3, 3), ("e\u0301" * 4, 4),
    ("\U0001F44D\U0001F3FD", 1),                # thumbs up + skin tone modifier
    ("\u0e01\u0e33", 1),                         # Thai consonant + sara am
    ("\r\n", 1), ("a\u200db", 2),
])
def test_grapheme_count_follows_uax29(text, expected):
    assert grapheme_count(text) == expected


def _max_graphemes(limit):
    return validator_for_inline("test-max-graphemes-%d" % limit, {"maxGraphemes": limit})


def test_max_graphemes_counts_clusters_not_code_points_or_utf16_units():
    check = _max_graphemes(3)
    assert list(check.iter_errors(FAMILY * 3)) == []          # 33 UTF-16 units, 21 code points
    assert list(check.iter_errors("e\u0301" * 3)) == []
    assert [e.message for e in check.iter_errors(FAMILY * 4)] == ["is longer than 3 characters (grapheme clusters)"]
    assert list(check.iter_errors("abcd"))
    assert list(check.iter_errors(42)) == []                  # only strings are measured


def test_grapheme_counting_stops_one_past_the_limit(monkeypatch):
    """https://developers.line.biz/en/docs/messaging-api/text-character-count/ counts postback
    displayText in grapheme clusters (max 300). A 10 MB displayText used to be segmented in full
    (about 2 s of CPU per request); counting now stops at limit + 1 clusters, so the verdict is exact
    and the cost does not grow with the input."""
    import regex

    assert grapheme_count("a" * 1000, 300) == 301
    assert grapheme_count(FAMILY * 300, 300) == 300
    assert grapheme_count(FAMILY * 301, 300) == 301
    assert grapheme_count("ab", 300) == 2
    huge = FAMILY * 900000 + "x"  # ~10 MB of UTF-16, 900,001 clusters
    segmented = []
    finditer = regex.finditer

    def counting_finditer(*args, **kwargs):
        for match in finditer(*args, **kwargs):
            segmented.append(1)
            yield match

    monkeypatch.setattr(regex, "finditer", counting_finditer)
    monkeypatch.setattr(regex, "findall", None)  # the segment-everything path is not taken
    found = details([{"type": "template", "altText": "a", "template": {"type": "buttons", "text": "t", "actions": [
        dict(POSTBACK_ACTION, displayText=huge)]}}])
    assert found == [{"path": "inputs.messages[0].template.actions[0].displayText",
                      "message": "is longer than 300 characters (grapheme clusters)"}]
    assert len(segmented) == 301  # clusters looked at, of 900,001


POSTBACK_ACTION = {"type": "postback", "label": "Buy", "data": "action=buy"}


def test_quick_reply_and_sender_are_validated_once_with_the_same_paths():
    """They are declared on the base message object only (variants just allow the keys)."""
    bad = {"type": "text", "text": "x", "sender": {"name": "n" * 21},
           "quickReply": {"items": [{"type": "action", "imageUrl": "http://e.com/i.png",
                                     "action": {"type": "message", "label": "a", "text": "a"}}]}}
    errors = push_errors([bad])
    assert len(errors) == 2, [e.message for e in errors]
    assert sorted(d["path"] for d in errors_to_details(errors, "inputs")) == [
        "inputs.messages[0].quickReply.items[0].imageUrl", "inputs.messages[0].sender.name"]
    for kind in ("sticker", "flex", "coupon"):
        found = details([{"type": kind, "sender": {"name": "n" * 21}}])
        assert [d["path"] for d in found].count("inputs.messages[0].sender.name") == 1, found
        assert sum(e.validator == "maxUtf16Length" for e in push_errors([{"type": kind, "sender": {"name": "n" * 21}}])) == 1


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff" * 3000, "\ud83d" * 5000, "\ud83d" * 5001])
def test_lone_surrogates_are_measured_not_crashed_on(text):
    """JSON text may escape half a UTF-16 pair; Python's json keeps it as a lone surrogate, which
    strict UTF-16 encoding rejects (this used to raise UnicodeEncodeError). Each counts 1 unit."""
    found = details([{"type": "text", "text": text}])
    too_long = len(text) > 5000
    assert found == ([{"path": "inputs.messages[0].text", "message": "is longer than 5000 characters (UTF-16 units)"}]
                     if too_long else [])


def test_short_strings_are_not_segmented(monkeypatch):
    """A string of at most `limit` code points cannot have more clusters."""
    import line_connector.validation as validation

    def boom(text, limit=None):
        raise AssertionError("segmented a string that cannot be too long")

    monkeypatch.setattr(validation, "grapheme_count", boom)
    assert list(_max_graphemes(20).iter_errors("x" * 20)) == []
    assert push_errors(BY_ID["ok_buttons"]["messages"]) == []


def test_regex_is_imported_only_when_a_string_could_be_too_long():
    code = ("import json, sys\n"
            "from line_connector.validation import iter_errors\n"
            "m = [{'type': 'template', 'altText': 'a', 'template': {'type': 'buttons', 'text': 't', "
            "'actions': [{'type': 'message', 'label': %s, 'text': 'x'}]}}]\n"
            "errs = list(iter_errors('line/send_push.input.json', {'to': %r, 'messages': m}))\n"
            "print(json.dumps([len(errs), 'regex' in sys.modules]))\n")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    short = subprocess.run([sys.executable, "-c", code % ("'Yes'", USER)], capture_output=True, text=True,
                           env=env, timeout=60)
    long_ = subprocess.run([sys.executable, "-c", code % ("'\\U0001F1EF\\U0001F1F5' * 11", USER)],
                           capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(short.stdout) == [0, False], short.stderr
    assert json.loads(long_.stdout) == [0, True], long_.stderr


# ------------------------------------------------------------ error messages

def test_errors_name_the_field_the_limit_and_the_unit_never_the_value():
    secret = "S3cr3t-" + "\U0001F600" * 3
    label = secret + FAMILY * 20
    found = details([
        {"type": "template", "altText": "a", "template": {"type": "buttons", "text": "t", "actions": [
            {"type": "message", "label": label, "text": "x"}]}}])
    assert found == [{"path": "inputs.messages[0].template.actions[0].label",
                      "message": "is longer than 20 characters (grapheme clusters)"}]
    assert "S3cr3t" not in json.dumps(found)

    found = details([{"type": "text", "text": "x", "sender": {"name": secret + "\U0001F600" * 7}}])
    assert found == [{"path": "inputs.messages[0].sender.name",
                      "message": "is longer than 20 characters (UTF-16 units)"}]


def test_carousel_action_count_error_points_at_the_column_that_differs():
    found = details(BY_ID["carousel_unequal_actions"]["messages"])
    assert [d["path"] for d in found] == ["inputs.messages[0].template.columns[1].actions"]
    assert "same number of actions" in found[0]["message"] and "has 2" in found[0]["message"]


def test_action_not_allowed_in_a_context_names_the_allowed_types():
    found = details(BY_ID["buttons_action_camera"]["messages"])
    assert found[0]["path"] == "inputs.messages[0].template.actions[0].type"
    assert '"camera"' not in found[0]["message"] and '"postback"' in found[0]["message"]


def test_title_makes_the_buttons_text_limit_60():
    found = details(BY_ID["buttons_image_text_61"]["messages"])
    assert found == [{"path": "inputs.messages[0].template.text",
                      "message": "is longer than 60 characters (grapheme clusters)"}]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates_are_refused(value):
    """NaN passes every minimum/maximum; Python's json reads NaN and Infinity."""
    message = {"type": "location", "title": "t", "address": "a", "latitude": value, "longitude": 0}
    found = details([message])
    assert found and found[0]["path"] == "inputs.messages[0].latitude"
    assert any("finite" in d["message"] for d in found)
    found = details([dict(message, latitude=0, longitude=value)])
    assert any(d["path"] == "inputs.messages[0].longitude" and "finite" in d["message"] for d in found)


def test_every_limit_in_the_schema_cites_lines_reference():
    """Each length limit sits next to a `$comment` naming its source."""
    uncited = []

    def visit(node, path):
        if isinstance(node, dict):
            limits = {"maxUtf16Length", "maxGraphemes", "maxItems", "maxLength"} & set(node)
            if limits and "developers.line.biz" not in node.get("$comment", "") and path[-1:] != ["then"]:
                if not (path[-2:-1] == ["properties"] and path[-3:-2] == ["then"]):
                    uncited.append("/".join(map(str, path)))
            for key, value in node.items():
                visit(value, path + [key])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                visit(value, path + [i])

    visit(load_schema_file("line/messages.json"), [])
    assert uncited == []
