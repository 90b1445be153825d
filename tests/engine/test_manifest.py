"""The manifest, the action classes, the schemas and the assets agree, and
an inconsistent manifest is a loud error naming the entry."""
import json
import os
import shutil

import pytest
import yaml

from line_connector.action import Action
from line_connector.errors import ManifestError
from line_connector.manifest import load_manifest, manifest
from line_connector.paths import PACK_ROOT
from line_connector.validation import validate, validator_for

SPEC_ASSETS = {
    "line_oauth2_client_credentials": {"url", "token_url", "client_id", "client_secret"},
    "line_channel_access_token": {"url", "token"},
    "line_channel_secret": {"channel_secret"},
    "nxcloud": {"url", "super_message_url", "access_key", "access_secret"},
    "sobot": {"url", "appid", "app_key"},
}
SECRETS = {"client_secret", "token", "access_secret", "app_key", "channel_secret"}


def test_every_action_has_class_schemas_and_assets():
    m = manifest()
    assert m.check_all()
    for spec in m.actions.values():
        cls = spec.load_class()
        assert issubclass(cls, Action), spec.name
        validator_for(spec.inputs)
        validator_for(spec.outputs)
        for asset in spec.assets:
            assert m.asset(asset).name == asset
        if spec.example is not None:  # the documented example is valid input
            validate(spec.inputs, spec.example, "inputs", "example of %s" % spec.name)


@pytest.mark.parametrize("name,fields", sorted(SPEC_ASSETS.items()))
def test_assets_match_the_spec(name, fields):
    asset = manifest().asset(name)
    props = asset.schema["properties"]
    assert fields | {"verify_ssl", "http_proxy"} <= set(props)
    assert props["verify_ssl"]["default"] is True
    assert "http_proxy" not in asset.schema["required"]
    for field in fields & SECRETS:
        assert props[field]["format"] == "password"
    assert set(asset.secret_fields) == fields & SECRETS


@pytest.fixture
def pack_copy(tmp_path):
    """A copy of connector.yaml (+ schemas and actions paths) to break."""
    shutil.copytree(os.path.join(PACK_ROOT, "schemas"), tmp_path / "schemas")
    shutil.copytree(os.path.join(PACK_ROOT, "assets"), tmp_path / "assets")
    data = yaml.safe_load(open(os.path.join(PACK_ROOT, "connector.yaml"), encoding="utf-8"))

    def write(mutate):
        mutate(data)
        path = tmp_path / "connector.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return str(path)
    return write


def test_missing_schema_file_is_loud(pack_copy):
    def mutate(d):
        d["actions"][0]["inputs"] = "line/nope.input.json"
    with pytest.raises(ManifestError, match=r"line_send_push.*schemas/line/nope.input.json"):
        load_manifest(pack_copy(mutate))


def test_unknown_asset_is_loud(pack_copy):
    def mutate(d):
        d["actions"][0]["assets"] = ["line_carrier_pigeon"]
    with pytest.raises(ManifestError, match=r"line_send_push.*line_carrier_pigeon"):
        load_manifest(pack_copy(mutate))


def test_missing_class_module_is_loud(pack_copy):
    def mutate(d):
        d["actions"][0]["class"] = "line.nowhere:SendPush"
    with pytest.raises(ManifestError, match=r"line_send_push.*actions/line/nowhere.py"):
        load_manifest(pack_copy(mutate))


def test_missing_class_is_loud_when_loaded(pack_copy):
    def mutate(d):
        d["actions"][0]["class"] = "line.send:NoSuchClass"
    m = load_manifest(pack_copy(mutate))
    with pytest.raises(ManifestError, match=r"line_send_push.*NoSuchClass"):
        m.check_all()


def test_meta_schema_violation_is_loud(pack_copy):
    def mutate(d):
        del d["actions"][1]["title"]
        d["actions"][0]["colour"] = "green"
    with pytest.raises(ManifestError) as exc:
        load_manifest(pack_copy(mutate))
    text = str(exc.value)
    assert "actions[1].title: is required" in text
    assert "actions[0].colour: is not an allowed field" in text


def test_duplicate_action_is_loud(pack_copy):
    def mutate(d):
        d["actions"].append(dict(d["actions"][0]))
    with pytest.raises(ManifestError, match="line_send_push is declared twice"):
        load_manifest(pack_copy(mutate))


def test_unreadable_yaml_is_loud(tmp_path):
    bad = tmp_path / "connector.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(str(bad))


def test_cli_check_and_list(cli):
    code, out, err = cli("check")
    assert code == 0, err
    assert "manifest OK" in out
    code, out, _ = cli("list", "--json")
    names = [a["name"] for a in json.loads(out)]
    assert names == list(manifest().actions)
    code, out, _ = cli("list")
    assert "line_send_push" in out and "Send push message" in out
