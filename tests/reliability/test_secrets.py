"""A canary secret in every secret field of every asset never appears in
any output: success, failure, dry run, input and asset errors, exception
text, reprs and logs, in plain, URL-encoded or base64 form."""
import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from helpers import run_cli
from line_connector import ActionError, InputError
from line_connector import run_action as _run_action
from line_connector.http import HttpClient
from line_connector.manifest import manifest
from line_connector.sandbox import FaultPlan, Sandbox, webhook_body

CANARY = "Cnry-9x!Secret/+=~q7"
SECRET_FIELDS = ("token", "client_secret", "channel_secret", "access_secret", "app_key")
CANARY_CREDS = {k: CANARY for k in SECRET_FIELDS}
ACTIONS = list(manifest().actions.values())


def run_action(*args, **kw):
    """run_action with retries that do not wait (the fault path retries a lot)."""
    kw.setdefault("client", HttpClient(sleep=lambda s: None))
    return _run_action(*args, **kw)


def forms(secret):
    raw = secret.encode()
    out = {secret, quote(secret, safe=""), quote_plus(secret)}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(raw).decode()
        out |= {text, text.rstrip("=")}
    return out


LEAKS = forms(CANARY)


def assert_clean(*texts):
    for text in texts:
        for form in LEAKS:
            assert form not in text, "secret leaked as %r in: %s" % (form, text[:300])


def inputs_for(spec, sandbox):
    inputs = dict(spec.example)
    if "replyToken" in inputs:  # reply tokens work once
        import uuid
        inputs["replyToken"] = uuid.uuid4().hex
    if spec.name == "line_get_narrowcast_progress":
        inputs["requestId"] = run_action("line_send_narrowcast", {}, {"messages": [{"type": "text", "text": "x"}]},
                                         sandbox=sandbox)[0]["request_id"]
    if spec.name == "line_parse_webhook":
        inputs["body"], inputs["signature"] = webhook_body([{"type": "unfollow", "mode": "active", "timestamp": 1}],
                                                           channel_secret=CANARY)
    return inputs


def outcome_text(fn):
    try:
        return json.dumps(fn(), ensure_ascii=False)
    except (InputError, ActionError) as exc:
        detail = exc.to_json() if isinstance(exc, InputError) else exc.output
        return " ".join([str(exc), repr(exc), json.dumps(detail, ensure_ascii=False)])


@pytest.mark.parametrize("spec", ACTIONS, ids=[a.name for a in ACTIONS])
def test_canary_never_leaks_in_any_path(spec, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with Sandbox(credentials=CANARY_CREDS) as sb:
        for asset_name in spec.assets:
            asset = sb.demo_assets()[asset_name]
            inputs = inputs_for(spec, sb)
            ok = run_action(spec.name, asset, inputs)  # success path really succeeds with the canary
            texts.append(json.dumps(ok, ensure_ascii=False))
            texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs, dry_run=True)))
            texts.append(outcome_text(lambda: run_action(spec.name, asset, {"bogus": CANARY})))
            texts.append(outcome_text(lambda: run_action(spec.name, dict(asset, verify_ssl="no"), inputs)))
            texts.append(outcome_text(lambda: run_action(spec.name, dict(asset, url="bad"), {"bogus": 1})))
    with Sandbox() as refusing:  # the canary is now the wrong secret: the services refuse it
        for asset_name in spec.assets:
            asset = dict(refusing.demo_assets()[asset_name], **{k: CANARY for k in SECRET_FIELDS
                                                                if k in refusing.demo_assets()[asset_name]})
            texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs_for(spec, refusing))))
    with Sandbox(credentials=CANARY_CREDS, faults=FaultPlan(script=["500"] * 10)) as failing:
        asset = failing.demo_assets()[spec.assets[0]]
        texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs_for(spec, failing))))
    texts.append("\n".join(r.getMessage() for r in caplog.records))
    assert_clean(*texts)


def test_reprs_of_credential_objects_are_masked():
    from line_connector.actions.line.auth import line_auth
    from line_connector.actions.nxcloud.signing import NxSigner
    from line_connector.actions.sobot.token import SobotToken
    from line_connector.http import Request
    from line_connector.redaction import Redactor, Secret

    objects = [line_auth("line_channel_access_token", {"token": CANARY}, Redactor()),
               line_auth("line_oauth2_client_credentials", {"token_url": "https://x", "client_id": "1",
                                                            "client_secret": CANARY}, Redactor()),
               NxSigner("ak", CANARY, "7", "mt"), SobotToken("https://x", "app", CANARY, Redactor()), Secret(CANARY)]
    objects.append(Request("POST", "https://x", auth=objects[0]))
    assert_clean(*[repr(o) for o in objects], *[str(vars(o)) for o in objects[:4]])


@pytest.mark.parametrize("action", ["line_send_push", "nxcloud_send_super_message", "sobot_query_task_list",
                                    "line_parse_webhook"])
def test_cli_stdout_and_stderr_stay_clean(action):
    spec = manifest().action(action)
    with Sandbox(credentials=CANARY_CREDS) as sb:
        asset = sb.demo_assets()[spec.assets[0]]
        inputs = inputs_for(spec, sb)
        for args, payload in [(("run", action), {"asset": asset, "inputs": inputs}),
                              (("run", action, "--dry-run"), {"asset": asset, "inputs": inputs}),
                              (("run", action), {"asset": asset, "inputs": {"bad": CANARY}}),
                              (("run", action), {"asset": dict(asset, url="https://127.0.0.1:1"), "inputs": inputs})]:
            code, out, err = run_cli(*args, stdin=payload)
            assert code in (0, 1, 2)
            assert_clean(out, err)
