"""The line_channel_jwt asset: channel access tokens v2.1 (SPEC 14, issue 24).

LINE's rules for the assertion, "Issue channel access token v2.1"
(developers.line.biz/en/docs/messaging-api/generate-json-web-token/#generate-jwt):
header alg RS256, typ JWT, kid of the registered public key; payload iss and
sub the channel ID, aud https://api.line.me/, exp at most 30 minutes ahead,
token_exp at most 30 days; the key an RSA key of 2048 bits
(#create-an-assertion-signing-key). The token request is reference
#issue-channel-access-token-v2-1: POST /oauth2/v2.1/token, form-encoded.
"""
import base64
import json
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, quote, quote_plus

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from helpers import TEXT, USER, run_cli
from line_connector import ActionError, InputError, run_action
from line_connector.sandbox import FaultPlan, Sandbox
from line_connector.sandbox.line_tokens import DEMO_KID

PUSH = {"to": USER, "messages": TEXT}
MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


def _text(body):
    return body.decode() if isinstance(body, bytes) else body


def new_key(bits=2048):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return json.loads(RSAAlgorithm.to_jwk(key))


def public_of(jwk):
    return {k: jwk[k] for k in ("kty", "n", "e")}


def jwt_asset(sandbox, jwk, kid="kid-test-1", **extra):
    sandbox.line.register_assertion_key(kid, public_of(jwk))
    return dict({"url": sandbox.url, "data_url": sandbox.url, "channel_id": sandbox.line.client_id, "kid": kid,
                 "private_key": json.dumps(jwk)}, **extra)


def leak_forms(secret):
    """Plain, URL-encoded, JSON-escaped and base64 forms of a secret."""
    raw = secret.encode()
    out = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        out |= {enc(raw).decode(), enc(raw).decode().rstrip("=")}
    return out


def assert_no_key(jwk, *texts):
    secrets = [json.dumps(jwk)] + [jwk[m] for m in MEMBERS]
    for text in texts:
        for secret in secrets:
            for form in leak_forms(secret):
                assert form not in text, "private key material leaked as %r" % form[:40]


def outcome_text(fn):
    try:
        return json.dumps(fn())
    except (InputError, ActionError) as exc:
        detail = exc.to_json() if isinstance(exc, InputError) else exc.output
        return " ".join([str(exc), repr(exc), json.dumps(detail)])


# ------------------------------------------------------------ end to end

def test_push_with_a_channel_jwt_asset_end_to_end():
    """The sandbox verifies the assertion against the registered public key
    (as LINE does) and accepts the token it issued as Bearer; a second action
    reuses the stored token: one issue."""
    jwk = new_key()
    with Sandbox() as sb:
        asset = jwt_asset(sb, jwk)
        (result,) = run_action("line_send_push", asset, PUSH)
        assert result["ok"] and result["json_body"]["sentMessages"]
        assert sb.line.per_recipient[USER] == 1
        (info,) = run_action("line_get_bot_info", asset, {})
        assert info["ok"]
        stats = sb.stats()["line"]
        assert stats["jwt_token_requests"] == 1 and stats["v21_tokens_issued"] == 1
        assert stats["token_requests"] == 0  # no channel secret involved at all


def test_demo_asset_and_cli_sandbox_run():
    code, out, err = run_cli("run", "line_send_push", "--sandbox",
                             stdin={"asset": {}, "inputs": PUSH})
    assert code == 0, err
    with Sandbox() as sb:
        asset = sb.demo_assets()["line_channel_jwt"]
        assert asset["kid"] == DEMO_KID
        assert run_action("line_get_bot_info", asset, {})[0]["ok"]


@responses.activate
def test_assertion_and_token_request_follow_lines_rules():
    """Decoded with the public key: header and claims as LINE's page lists them."""
    jwk = new_key()
    seen = {}

    def token(request):
        seen["form"] = {k: v[0] for k, v in parse_qs(_text(request.body)).items()}
        seen["content_type"] = request.headers["Content-Type"]
        return 200, {}, json.dumps({"access_token": "v21-issued-token", "token_type": "Bearer",
                                    "expires_in": 3600, "key_id": "kid-issued"})

    responses.add_callback(responses.POST, "https://api.line.me/oauth2/v2.1/token", callback=token)
    responses.add(responses.POST, "https://api.line.me/v2/bot/message/push", json={"sentMessages": []})
    asset = {"channel_id": "1234567890", "kid": "kid-A", "private_key": json.dumps(jwk), "token_exp": 86400}
    before = time.time()
    run_action("line_send_push", asset, PUSH)
    form = seen["form"]
    assert seen["content_type"] == "application/x-www-form-urlencoded"
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = form["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-A"}
    claims = jwt.decode(assertion, RSAAlgorithm.from_jwk(json.dumps(public_of(jwk))), algorithms=["RS256"],
                        audience="https://api.line.me/")
    assert claims["iss"] == claims["sub"] == "1234567890"
    assert 0 < claims["exp"] - before <= 30 * 60
    assert claims["token_exp"] == 86400
    assert responses.calls[1].request.headers["Authorization"] == "Bearer v21-issued-token"


@responses.activate
def test_token_exp_defaults_to_30_days():
    jwk = new_key()
    forms = []
    responses.add_callback(responses.POST, "https://api.line.me/oauth2/v2.1/token",
                           callback=lambda r: (forms.append(parse_qs(_text(r.body))) or
                                               (200, {}, json.dumps({"access_token": "t-123456", "expires_in": 10,
                                                                     "token_type": "Bearer", "key_id": "k"}))))
    responses.add(responses.GET, "https://api.line.me/v2/bot/info", json={"userId": "U"})
    run_action("line_get_bot_info", {"channel_id": "1", "kid": "k", "private_key": json.dumps(jwk)}, {})
    claims = jwt.decode(forms[0]["client_assertion"][0], options={"verify_signature": False})
    assert claims["token_exp"] == 30 * 86400


def test_a_token_too_long_is_refused_before_anything_is_sent():
    with Sandbox() as sb:
        asset = dict(sb.demo_assets()["line_channel_jwt"], token_exp=30 * 86400 + 1)
        with pytest.raises(InputError) as exc:
            run_action("line_get_bot_info", asset, {})
        assert any(d["path"] == "asset.token_exp" for d in exc.value.details)
        assert sb.requests == 0


# ------------------------------------------------------------ one issue

@pytest.mark.parametrize("store", ["files", "redis"])
def test_twenty_processes_issue_one_token(store, request, tmp_path):
    """20 CLI processes, one channel: ONE v2.1 token is issued, under the
    state store's lock (files, or Redis as across replicas). The first issue
    is held 2 s by the sandbox, so the others really arrive while it is
    under way. (About 10 s: twenty Python processes on a small machine.)"""
    env = dict(os.environ)
    if store == "redis":
        env["LINE_CONNECTOR_STATE"] = request.getfixturevalue("redis_url")
    jwk = new_key()
    with Sandbox(faults=FaultPlan(script=["slow"])) as sb:
        payload = json.dumps({"asset": jwt_asset(sb, jwk, kid="kid-%s" % store), "inputs": {}})
        procs = [subprocess.Popen([sys.executable, "-m", "line_connector.cli", "run", "line_get_bot_info"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(20)]
        try:
            outs = [p.communicate(payload, timeout=90) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert json.loads(out)[0]["ok"]
        stats = sb.stats()["line"]
        assert stats["jwt_token_requests"] == 1, stats
        assert stats["v21_tokens_issued"] == 1


# ------------------------------------------------------------ the key is a secret

def test_private_key_never_appears_in_any_output(caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    jwk = new_key()
    texts = []
    with Sandbox() as sb:
        asset = jwt_asset(sb, jwk)
        texts.append(outcome_text(lambda: run_action("line_send_push", asset, PUSH)))
        texts.append(outcome_text(lambda: run_action("line_send_push", asset, PUSH, dry_run=True)))
        texts.append(outcome_text(lambda: run_action("line_send_push", asset, {"bogus": jwk["d"]})))
        texts.append(outcome_text(lambda: run_action("line_send_push", dict(asset, verify_ssl="no"), PUSH)))
        # the key echoed back by a hostile server, in the body of a refusal
        texts.append(outcome_text(lambda: run_action("line_send_push", dict(asset, kid="unregistered"), PUSH)))
    with Sandbox() as refusing:  # nothing registered: LINE refuses the assertion
        asset = dict(jwt_asset(refusing, new_key()), private_key=json.dumps(jwk))
        texts.append(outcome_text(lambda: run_action("line_get_bot_info", asset, {})))
    with Sandbox(faults=FaultPlan(script=["500"] * 10)) as failing:
        asset = jwt_asset(failing, jwk)
        texts.append(outcome_text(lambda: run_action("line_get_bot_info", asset, {})))
    for args in (("run", "line_send_push"), ("run", "line_send_push", "--dry-run")):
        with Sandbox() as sb:
            code, out, err = run_cli(*args, stdin={"asset": jwt_asset(sb, jwk), "inputs": PUSH})
            assert code == 0, err
            texts += [out, err]
    from line_connector.actions.line.auth import line_auth
    from line_connector.redaction import Redactor

    auth = line_auth("line_channel_jwt", {"url": "https://x", "channel_id": "1", "kid": "k",
                                          "private_key": json.dumps(jwk)}, Redactor())
    texts += [repr(auth), str(vars(auth)), repr(auth.assertion), str(vars(auth.assertion))]
    texts.append("\n".join(r.getMessage() for r in caplog.records))
    assert_no_key(jwk, *texts)


@responses.activate
def test_key_members_echoed_by_a_server_are_masked():
    """A hostile server echoes the private members (and the assertion)
    back in every encoding: none survives in the output."""
    jwk = new_key()
    echo = {m: jwk[m] for m in MEMBERS}
    echo["escaped"] = json.dumps(json.dumps(jwk))
    echo["b64"] = base64.b64encode(jwk["d"].encode()).decode()
    echo["url"] = quote(json.dumps(jwk), safe="")

    def token(request):
        form = {k: v[0] for k, v in parse_qs(_text(request.body)).items()}
        return 400, {}, json.dumps(dict(echo, error="invalid_client", error_description=form["client_assertion"]))

    responses.add_callback(responses.POST, "https://api.line.me/oauth2/v2.1/token", callback=token)
    with pytest.raises(ActionError) as exc:
        run_action("line_get_bot_info", {"channel_id": "1", "kid": "k", "private_key": json.dumps(jwk)}, {})
    text = " ".join([str(exc.value), json.dumps(exc.value.output)])
    assert_no_key(jwk, text)
    assertion = parse_qs(_text(responses.calls[0].request.body))["client_assertion"][0]
    assert assertion not in text and assertion.rsplit(".", 1)[1] not in text


# ------------------------------------------------------------ bad keys

def _ec_jwk():
    return json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))


BAD_KEYS = {
    "not_json": lambda jwk: "-----BEGIN PRIVATE KEY-----\n" + jwk["d"] + "\n-----END PRIVATE KEY-----",
    "json_array": lambda jwk: json.dumps([jwk["d"]]),
    "ec_key": lambda jwk: json.dumps(dict(_ec_jwk(), d=jwk["d"])),
    "oct_key": lambda jwk: json.dumps({"kty": "oct", "k": jwk["d"]}),
    "public_only": lambda jwk: json.dumps(dict(public_of(jwk), p=jwk["p"])),
    "wrong_alg": lambda jwk: json.dumps(dict(jwk, alg="RS512")),
    "broken_member": lambda jwk: json.dumps(dict(jwk, d=jwk["d"][:-8] + "AAAAAAAA", n="AQAB" + jwk["d"])),
    "garbage_member": lambda jwk: json.dumps(dict(jwk, n="!!" + jwk["d"])),
}


@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_bad_or_non_rsa_key_is_exit_2_naming_the_field(kind):
    jwk = new_key()
    bad = BAD_KEYS[kind](jwk)
    with Sandbox() as sb:
        asset = {"url": sb.url, "channel_id": "1650000000", "kid": "k", "private_key": bad}
        with pytest.raises(InputError) as exc:
            run_action("line_send_push", asset, PUSH)
        assert [d["path"] for d in exc.value.details] == ["asset.private_key"]
        assert sb.requests == 0  # nothing sent
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH})
        assert code == 2 and out == ""
        assert json.loads(err)["details"][0]["path"] == "asset.private_key"
        assert_no_key(jwk, str(exc.value), json.dumps(exc.value.to_json()), err)
        assert bad not in err


def test_a_1024_bit_key_is_refused_as_line_requires_2048():
    jwk = new_key(1024)
    with pytest.raises(InputError) as exc:
        run_action("line_get_bot_info", {"channel_id": "1", "kid": "k", "private_key": json.dumps(jwk)}, {})
    assert exc.value.details[0]["path"] == "asset.private_key"
    assert "2048" in exc.value.details[0]["message"]
    assert_no_key(jwk, json.dumps(exc.value.to_json()))


def test_without_the_jwt_extra_the_error_names_it(monkeypatch):
    jwk = new_key()
    monkeypatch.setitem(sys.modules, "jwt", None)  # import jwt now raises ImportError
    monkeypatch.setitem(sys.modules, "jwt.algorithms", None)
    with pytest.raises(InputError) as exc:
        run_action("line_get_bot_info", {"channel_id": "1", "kid": "k", "private_key": json.dumps(jwk)}, {})
    assert "line-connector[jwt]" in exc.value.message
    assert exc.value.details[0]["path"] == "asset.private_key"


# ------------------------------------------------------------ the sandbox checks as LINE does

def _assertion(jwk, kid, **claims):
    now = int(time.time())
    payload = dict({"iss": "1650000000", "sub": "1650000000", "aud": "https://api.line.me/", "exp": now + 600,
                    "token_exp": 3600}, **claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, RSAAlgorithm.from_jwk(json.dumps(jwk)), algorithm="RS256",
                      headers={"kid": kid})


@pytest.mark.parametrize("case,claims,error", [
    ("valid", {}, None),
    # exp as seconds from the moment the test runs (not from collection, minutes earlier in a full run)
    ("exp_past", {"_exp_in": -60}, "invalid_request"),
    ("exp_too_far", {"_exp_in": 31 * 60}, "invalid_request"),
    ("aud_wrong", {"aud": "https://api.line.me"}, "invalid_request"),
    ("iss_other_channel", {"iss": "1111111111"}, "invalid_client"),
    ("sub_missing", {"sub": None}, "invalid_client"),
    ("token_exp_over_30_days", {"token_exp": 30 * 86400 + 1}, "invalid_request"),
    ("token_exp_missing", {"token_exp": None}, "invalid_request"),
    ("unknown_kid", {"_kid": "nobody"}, "invalid_client"),
    ("signed_by_another_key", {"_key": "other"}, "invalid_client"),
])
def test_sandbox_checks_the_assertion_as_line_does(case, claims, error):
    import requests

    jwk = new_key()
    with Sandbox() as sb:
        sb.line.register_assertion_key("kid-1", public_of(jwk))
        claims = dict(claims)  # the parameter's own dict is shared: never changed
        if "_exp_in" in claims:
            claims["exp"] = int(time.time()) + claims.pop("_exp_in")
        kid = claims.pop("_kid", "kid-1")
        key = new_key() if claims.pop("_key", None) else jwk
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": _assertion(key, kid, **claims)}
        resp = requests.post(sb.url + "/oauth2/v2.1/token", data=form, timeout=10)
        if error is None:
            assert resp.status_code == 200
            token = resp.json()["access_token"]
            assert resp.json()["expires_in"] == 3600 and resp.json()["key_id"]
            info = requests.get(sb.url + "/v2/bot/info", headers={"Authorization": "Bearer " + token}, timeout=10)
            assert info.status_code == 200
        else:
            assert resp.status_code == 400 and resp.json()["error"] == error, resp.text
            assert sb.stats()["line"]["v21_tokens_issued"] == 0
