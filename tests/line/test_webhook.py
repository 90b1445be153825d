"""line_parse_webhook: signatures, every event type, redelivery, Sobot's
forwarded payloads, and the local receiver."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from line_connector import ActionError, InputError, run_action
from line_connector.actions.line.webhook import EVENT_DATA, signature
from line_connector.sandbox import CHANNEL_SECRET, sign_webhook, webhook_body
from openapi import discriminator_values
from webhook_events import EVENTS, MESSAGES, U

SECRET = "wh-Canary-Secret-31f"
ASSET = {"channel_secret": SECRET}
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def parse(events, secret=SECRET, **extra):
    body, sig = webhook_body(events, channel_secret=secret)
    return run_action("line_parse_webhook", ASSET, dict({"body": body, "signature": sig}, **extra))


def test_signature_is_base64_hmac_sha256_of_the_raw_bytes():
    import base64
    import hashlib
    import hmac
    body = '{"events":[],"destination":"Uxx","note":"ข้อความ 消息"}'
    expected = base64.b64encode(hmac.new(SECRET.encode(), body.encode("utf-8"), hashlib.sha256).digest()).decode()
    assert signature(body, SECRET) == expected == sign_webhook(body.encode("utf-8"), SECRET)


def sdk_types(model):
    """The discriminator values the installed official SDK maps to a class."""
    return set(getattr(model, "_%s__discriminator_value_class_map" % model.__name__))


def test_we_cover_every_event_type_in_lines_spec_and_the_official_sdk():
    from linebot.v3.webhooks import Event, MessageContent

    spec_types = discriminator_values("Event", "webhook.yml") | sdk_types(Event)
    assert "messageEdited" in spec_types
    assert set(EVENT_DATA) == spec_types
    assert set(EVENTS) == spec_types
    assert set(MESSAGES) == discriminator_values("MessageContent", "webhook.yml") | sdk_types(MessageContent)


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_every_event_type_is_normalized(kind):
    out = parse([EVENTS[kind]])
    assert out["verified"] is True and out["count"] == 1
    (event,) = out["events"]
    raw = EVENTS[kind]
    assert event["type"] == kind and event["known"] is True and event["raw"] == raw
    assert event["mode"] == "active" and event["timestamp"] == raw["timestamp"]
    assert event["webhookEventId"] == raw["webhookEventId"] and event["isRedelivery"] is False
    assert event["replyToken"] == raw.get("replyToken")
    source = raw.get("source", {})
    assert event["source_type"] == source.get("type")
    assert event["source_id"] == (source.get("userId") if source.get("type") == "user" else
                                  source.get("groupId") or source.get("roomId"))
    key = EVENT_DATA[kind]
    if key == "message":
        assert event["message"] == raw["message"] and event["data"] is None
    elif key:
        assert event["data"] == raw.get(key)
    else:
        assert event["data"] is None


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_every_message_type_keeps_its_fields(kind):
    event = dict(EVENTS["message"], message=MESSAGES[kind])
    (parsed,) = parse([event])["events"]
    assert parsed["message"] == MESSAGES[kind] and parsed["message"]["type"] == kind


def test_unknown_event_types_are_kept():
    future = {"type": "teleport", "mode": "active", "timestamp": 1, "destinationPlanet": "Mars"}
    out = parse([future, EVENTS["follow"]])
    assert [e["type"] for e in out["events"]] == ["teleport", "follow"]
    assert out["events"][0]["known"] is False and out["events"][0]["raw"] == future


def test_redelivery_is_flagged():
    event = dict(EVENTS["message"], deliveryContext={"isRedelivery": True})
    assert parse([event])["events"][0]["isRedelivery"] is True


def test_tampered_body_is_refused_with_no_events():
    body, sig = webhook_body([EVENTS["message"]], channel_secret=SECRET)
    tampered = body.replace("Good Morning", "Wire $1M to")
    with pytest.raises(ActionError) as exc:
        run_action("line_parse_webhook", ASSET, {"body": tampered, "signature": sig})
    assert exc.value.output["events"] == [] and exc.value.output["verified"] is False
    assert "does not match" in exc.value.message


def test_wrong_secret_and_missing_signature_are_refused():
    with pytest.raises(ActionError):
        parse([EVENTS["follow"]], secret="some-other-secret")
    body, _ = webhook_body([EVENTS["follow"]], channel_secret=SECRET)
    with pytest.raises(ActionError) as exc:
        run_action("line_parse_webhook", ASSET, {"body": body})
    assert "missing x-line-signature" in exc.value.message and exc.value.output["events"] == []
    with pytest.raises(ActionError):
        run_action("line_parse_webhook", ASSET, {"body": body, "signature": "not base64 at all ✗"})


def test_allow_unsigned_is_explicit_and_says_so_but_never_excuses_a_wrong_signature():
    body, sig = webhook_body([EVENTS["follow"]], channel_secret=SECRET)
    out = run_action("line_parse_webhook", ASSET, {"body": body, "allow_unsigned": True})
    assert out["verified"] is False and out["count"] == 1
    with pytest.raises(ActionError):
        run_action("line_parse_webhook", ASSET, {"body": body, "signature": sig[::-1], "allow_unsigned": True})


def test_cli_exit_codes_and_no_secret_in_output(cli):
    body, sig = webhook_body([EVENTS["postback"]], channel_secret=SECRET)
    code, out, err = cli("run", "line_parse_webhook", stdin={"asset": ASSET, "inputs": {"body": body, "signature": sig}})
    assert code == 0, err
    assert json.loads(out)["events"][0]["data"]["data"] == "action=buy&itemid=111"
    code, out, err = cli("run", "line_parse_webhook", stdin={"asset": ASSET, "inputs": {"body": body + " ", "signature": sig}})
    assert code == 1 and json.loads(out)["events"] == [] and "does not match" in json.loads(err)["error"]
    code, out, err = cli("run", "line_parse_webhook", stdin={"asset": ASSET, "inputs": {"signature": sig}})
    assert code == 2 and "inputs.body" in err
    assert SECRET not in out + err


def test_sobot_forwarded_payloads_parse():
    with open(os.path.join(FIXTURES, "sobot_webhooks.json"), encoding="utf-8") as fh:
        payloads = json.load(fh)["payloads"]
    seen = set()
    for payload in payloads:
        body = json.dumps(payload, ensure_ascii=False)
        out = run_action("line_parse_webhook", ASSET, {"body": body, "signature": signature(body, SECRET)})
        assert out["destination"] == payload["destination"] and out["count"] == len(payload["events"])
        for raw, event in zip(payload["events"], out["events"]):
            assert event["known"] and event["type"] == raw["type"] and event["raw"] == raw
            if raw["type"] == "message":
                assert event["message"]["type"] == raw["message"]["type"]
                seen.add(raw["message"]["type"])
            else:
                seen.add(raw["type"])
    assert {"text", "image", "video", "audio", "file", "location", "sticker", "follow", "unfollow"} <= seen


def test_parse_needs_the_channel_secret_asset():
    with pytest.raises(InputError) as exc:
        run_action("line_parse_webhook", {"token": "x" * 10}, {"body": "{}", "signature": "x"})
    assert any(d["path"] == "asset.channel_secret" for d in exc.value.details)


def test_local_receiver_prints_one_event_per_line(tmp_path):
    env = dict(os.environ, LC_TEST_SECRET=CHANNEL_SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "line_connector.cli", "webhook", "--port", "0",
                             "--secret-env", "LC_TEST_SECRET"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        banner = proc.stderr.readline()
        url = banner.split("listening on ")[1].split(" ")[0]
        # distinct ids: the receiver, like the service, hands an event id over once (the
        # fixtures share one id)
        follow = dict(EVENTS["follow"], webhookEventId="01HLOCALRECEIVERFOLLOW0001")
        message = dict(EVENTS["message"], webhookEventId="01HLOCALRECEIVERMESSAGE001")
        body, sig = webhook_body([follow, message])
        ok = requests.post(url, data=body.encode("utf-8"), headers={"x-line-signature": sig}, timeout=5)
        bad = requests.post(url, data=body.encode("utf-8"), headers={"x-line-signature": "AAAA"}, timeout=5)
        assert ok.status_code == 200 and bad.status_code == 400
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [e["type"] for e in lines] == ["follow", "message"] and lines[1]["user_id"] == U
        assert [e["raw"] for e in lines] == [follow, message]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "does not match" in err and CHANNEL_SECRET not in out + err


def test_receiver_without_the_secret_is_an_input_error(cli):
    code, _, err = cli("webhook", "--secret-env", "LC_SURELY_UNSET_VARIABLE")
    assert code == 2 and "LC_SURELY_UNSET_VARIABLE" in json.loads(err)["details"][0]["message"]


# ---------------------------------------------------------------------------
# The official SDK (linebot.v3) as the judge: it must accept exactly what we
# accept, and see each event as the type we report.

def test_message_edited_is_a_known_event_with_its_message():
    (event,) = parse([EVENTS["messageEdited"]])["events"]
    assert event["type"] == "messageEdited" and event["known"] is True
    assert event["message"]["text"] == "Good Morning!! (edited)" and event["message"]["type"] == "text"
    assert event["source_type"] == "group" and event["user_id"] == U and event["data"] is None


def test_the_sdks_parser_accepts_our_body_and_signature_and_sees_the_same_types():
    from linebot.v3 import WebhookParser
    from linebot.v3.webhooks import MessageContent
    from webhook_events import base

    events = list(EVENTS.values()) + [dict(EVENTS["message"], message=m) for m in MESSAGES.values()]
    events.append(base("teleport", destinationPlanet="Mars"))  # a type neither of us knows
    body, sig = webhook_body(events, channel_secret=SECRET)
    ours = run_action("line_parse_webhook", ASSET, {"body": body, "signature": sig})["events"]
    theirs = WebhookParser(SECRET).parse(body, sig)
    assert len(ours) == len(theirs) == len(events)
    for mine, sdk in zip(ours, theirs):
        sdk_known = type(sdk).__name__ != "UnknownEvent"
        assert mine["known"] is sdk_known and mine["type"] == sdk.type
        if isinstance(getattr(sdk, "message", None), MessageContent):
            assert mine["message"]["type"] == sdk.message.type and mine["message"]["id"] == sdk.message.id
        else:
            assert mine["message"] is None


@pytest.mark.parametrize("mangle", [lambda s: s + " ", lambda s: " " + s, lambda s: s + "\n", lambda s: "\t" + s,
                                    lambda s: s.lower(), lambda s: s[:-1]],
                         ids=["trailing-space", "leading-space", "trailing-newline", "leading-tab", "lowercase",
                              "truncated"])
def test_the_signature_is_compared_exactly_as_the_sdk_does(mangle):
    from linebot.v3 import WebhookParser
    from linebot.v3.exceptions import InvalidSignatureError

    body, sig = webhook_body([EVENTS["follow"]], channel_secret=SECRET)
    assert WebhookParser(SECRET).parse(body, sig) and parse([EVENTS["follow"]])["verified"] is True
    bad = mangle(sig)
    assert bad != sig
    with pytest.raises(InvalidSignatureError):
        WebhookParser(SECRET).parse(body, bad)
    with pytest.raises(ActionError) as exc:
        run_action("line_parse_webhook", ASSET, {"body": body, "signature": bad})
    assert exc.value.output["events"] == [] and exc.value.output["verified"] is False
