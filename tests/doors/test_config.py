"""The service/MCP config loader (SPEC 9): ``${NAME}`` substitution, its own
JSON Schema, asset kinds picked by the runner's rules, and no secret in
any error, repr or detail. Runs on every Python the pack supports."""
import json

import pytest

from line_connector.config import load_config
from line_connector.errors import InputError

SECRET = "canarySECRET-7d1e4b9a2c6f"


def _load(tmp_path, text, environ=None):
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(str(path), environ={} if environ is None else environ)


def _error(tmp_path, text, environ=None):
    with pytest.raises(InputError) as info:
        _load(tmp_path, text, environ)
    exc = info.value
    # the secret is nowhere: message, details, str, repr, args
    for rendering in (json.dumps(exc.to_json()), str(exc), repr(exc), repr(exc.args)):
        assert SECRET not in rendering
    assert exc.__cause__ is None
    return exc


FULL = """
assets:
  ops_line: {token: "${LINE_TOKEN}"}
  ops_oauth: {client_id: "1234567890", client_secret: "${LINE_CLIENT_SECRET}"}
  ops_secret: {channel_secret: "${LINE_CHANNEL_SECRET}"}
  ops_nx: {access_key: ak-demo, access_secret: "${NX_SECRET}"}
  ops_sobot: {appid: app-demo, app_key: "${SOBOT_KEY}"}
api_keys: ["${SERVICE_API_KEY}"]
state: redis://127.0.0.1:6379/0
webhooks:
  ops:
    asset: ops_secret
    forward:
      - jsonl: /var/log/line-events.jsonl
      - http: https://soar.example/trigger
allow_inline_assets: false
"""
ENV = {"LINE_TOKEN": SECRET, "LINE_CLIENT_SECRET": "cs-" + SECRET, "LINE_CHANNEL_SECRET": "ch-" + SECRET,
       "NX_SECRET": "nx-" + SECRET, "SOBOT_KEY": "sb-" + SECRET, "SERVICE_API_KEY": "key-" + SECRET}


def test_the_whole_spec_9_shape_loads_and_kinds_are_picked(tmp_path):
    config = _load(tmp_path, FULL, ENV)
    kinds = {name: a.kind for name, a in config.assets.items()}
    assert kinds == {"ops_line": "line_channel_access_token", "ops_oauth": "line_oauth2_client_credentials",
                     "ops_secret": "line_channel_secret", "ops_nx": "nxcloud", "ops_sobot": "sobot"}
    # ${NAME} substituted, and the runner's defaults filled
    assert config.assets["ops_line"].values["token"] == SECRET
    assert config.assets["ops_line"].values["url"] == "https://api.line.me"
    assert config.assets["ops_line"].values["verify_ssl"] is True
    assert config.api_keys == ["key-" + SECRET]
    assert config.state == "redis://127.0.0.1:6379/0"
    assert config.webhooks["ops"]["asset"] == "ops_secret"
    assert config.allow_inline_assets is False
    assert [a.name for a in config.assets_for(("line_channel_access_token", "line_oauth2_client_credentials"))] \
        == ["ops_line", "ops_oauth"]
    assert SECRET not in repr(config) and SECRET not in repr(config.assets)


def test_a_substituted_value_stays_data(tmp_path):
    """An environment value is never parsed as YAML: quotes, colons and
    braces land in the field as they are, and a ``${X}`` in the value is
    not substituted again."""
    tricky = 'a:"b"}#${X}' + SECRET  # a token is visible ASCII: no spaces
    config = _load(tmp_path, 'assets:\n  ops: {token: "${TOK}"}\n', {"TOK": tricky})
    assert config.assets["ops"].values["token"] == tricky


def test_a_missing_variable_is_an_error_naming_it(tmp_path):
    exc = _error(tmp_path, FULL, dict(ENV, LINE_TOKEN=""))
    assert exc.details == [{"path": "config.assets.ops_line.token",
                            "message": "uses environment variable LINE_TOKEN, which is not set or is empty; "
                                       "set it before starting"}]
    env = dict(ENV)
    del env["SERVICE_API_KEY"]
    exc = _error(tmp_path, FULL, env)
    assert exc.details[0]["path"] == "config.api_keys[0]"
    assert "SERVICE_API_KEY" in exc.details[0]["message"]


def test_unknown_keys_are_rejected(tmp_path):
    exc = _error(tmp_path, FULL + "listen: 0.0.0.0\n", ENV)
    assert {"path": "config.listen", "message": "is not an allowed field"} in exc.details
    exc = _error(tmp_path, FULL.replace("    asset: ops_secret", "    asset: ops_secret\n    retries: 3"), ENV)
    assert {"path": "config.webhooks.ops.retries", "message": "is not an allowed field"} in exc.details


def test_an_asset_that_fits_no_kind_is_named(tmp_path):
    text = 'assets:\n  half: {client_id: "1234567890", token: "%s"}\n' % SECRET
    exc = _error(tmp_path, text)
    assert exc.details[0]["path"] == "config.assets.half"
    assert "fits no asset kind" in exc.details[0]["message"]
    # and says, per kind, what is wrong, in the config's own paths
    assert {"path": "config.assets.half.client_secret",
            "message": "is required (for asset line_oauth2_client_credentials)"} in exc.details


def test_an_asset_with_one_bad_field_is_told_about_its_own_kind_only(tmp_path):
    """One mistyped URL on a channel-token asset: the errors are that kind's,
    not a list of what every other kind of the pack (NXCloud, Sobot, OAuth,
    JWT) would need."""
    exc = _error(tmp_path, 'assets:\n  ops: {token: "%s", url: "htp://api.line.me"}\n' % SECRET)
    assert exc.details[0]["path"] == "config.assets.ops"
    assert "closest by its fields: line_channel_access_token" in exc.details[0]["message"]
    assert [d["path"] for d in exc.details[1:]] == ["config.assets.ops.url"]
    assert "(for asset line_channel_access_token)" in exc.details[1]["message"]
    assert SECRET not in repr(exc.details)


def test_a_secret_in_a_field_that_breaks_a_rule_is_not_quoted(tmp_path):
    """A literal secret written where a URL goes (a common paste mistake)."""
    exc = _error(tmp_path, 'assets:\n  ops: {token: "%s", url: "%s"}\n' % (SECRET, SECRET))
    assert exc.details[0]["path"].startswith("config.assets.ops")


def test_a_webhook_route_to_an_unknown_asset_is_an_error(tmp_path):
    exc = _error(tmp_path, FULL.replace("asset: ops_secret", "asset: nobody"), ENV)
    assert exc.details == [{"path": "config.webhooks.ops.asset",
                            "message": "names an asset that is not in config.assets "
                                       "(ops_line, ops_oauth, ops_secret, ops_nx, ops_sobot)"}]
    exc = _error(tmp_path, FULL.replace("asset: ops_secret", "asset: ops_line"), ENV)
    assert exc.details[0]["path"] == "config.webhooks.ops.asset"
    assert "line_channel_secret" in exc.details[0]["message"]


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(InputError) as info:
        load_config(str(tmp_path / "missing.yaml"), environ={})
    assert info.value.details[0]["path"] == "--config"
    exc = _error(tmp_path, 'assets:\n  ops: {token: "%s"\n  other: [\n' % SECRET)
    assert exc.details[0]["path"] == "config"
    assert "line" in exc.details[0]["message"]
    exc = _error(tmp_path, "- just\n- a list\n")
    assert exc.details[0]["path"] == "config"
    exc = _error(tmp_path, "assets: {}\n")
    assert exc.details[0]["path"] == "config.assets"


def test_plain_json_only(tmp_path):
    """YAML can say things JSON cannot (.nan, dates); they are refused."""
    exc = _error(tmp_path, 'assets:\n  ops: {token: "%s", verify_ssl: .nan}\n' % SECRET)
    assert exc.details[0]["path"] == "config.assets.ops.verify_ssl"
    exc = _error(tmp_path, 'assets:\n  ops: {token: "%s"}\nstate: 2024-01-01\n' % SECRET)
    assert exc.details[0]["path"] == "config.state"
