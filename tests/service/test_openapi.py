"""The service's OpenAPI 3.1 document (issue 14 item 2, SPEC 9).

Checked three ways: the official validator of the OpenAPI 3.1 specification
(``openapi-spec-validator``) accepts it; it says what the pack says (every
action of the manifest, every example of connector.yaml fits its path's
request schema, the bad inputs the pack refuses are refused by it too); and
schemathesis, given only the document, fuzzes the running service and
finds no server error and no answer the document does not describe
(test_openapi_fuzz.py).
"""
import json

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from line_connector.manifest import manifest
from line_connector.service.openapi import CUSTOM_KEYWORDS, document, portable

LONG_TOKEN = "svc-Canary-Token-8Hq3Lz0Pw6"
API_KEY = "svc-api-key-Canary-2Jd7Xm4Nq9"


class _Config:
    """A ServiceConfig stand-in with every asset kind configured (the real
    loader is used in ``real_config``)."""

    def __init__(self, kinds, inline=False, webhooks=None):
        self.assets = {name: type("A", (), {"name": name, "kind": kind})() for name, kind in kinds.items()}
        self.allow_inline_assets = inline
        self.webhooks = webhooks or {}
        self.api_keys = [API_KEY]

    def assets_for(self, accepted):
        return [a for a in self.assets.values() if a.kind in accepted]


@pytest.fixture(scope="module")
def real_config(tmp_path_factory):
    from line_connector.config import load_config

    path = tmp_path_factory.mktemp("cfg") / "service.json"
    path.write_text(json.dumps({
        "assets": {"ops_line": {"url": "http://127.0.0.1:9", "token": LONG_TOKEN},
                   "ops_secret": {"channel_secret": "chsecretCanary0123456789abcdefAB"},
                   "ops_nx": {"url": "http://127.0.0.1:9", "access_key": "ak", "access_secret": "as-Canary-77"},
                   "ops_sobot": {"url": "http://127.0.0.1:9", "appid": "app", "app_key": "key-Canary-55"},
                   # SPEC 14's token actions take only these kinds (client credentials, the channel's key)
                   "ops_oauth": {"url": "http://127.0.0.1:9", "client_id": "1650000000",
                                 "client_secret": "cs-Canary-66"},
                   "ops_jwt": {"url": "http://127.0.0.1:9", "channel_id": "1650000000", "kid": "kid-1",
                               "private_key": '{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "Canary-d-44"}'}},
        "api_keys": [API_KEY],
        "webhooks": {"ops": {"asset": "ops_secret", "forward": [{"jsonl": str(path.parent / "ev.jsonl")}]}},
    }), encoding="utf-8")
    return load_config(str(path))


@pytest.fixture(scope="module")
def doc(real_config):
    return document(real_config)


def _request_validator(doc, action):
    schema = {"$ref": "#/components/schemas/%s.request" % action, "components": doc["components"]}
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_the_official_validator_accepts_it_as_openapi_3_1(doc):
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)  # raises on any violation


def test_the_validator_does_reject_a_broken_document(doc):
    """The check above can fail: a dangling reference is refused."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    broken = json.loads(json.dumps(doc))
    broken["paths"]["/v1/actions/line_get_quota"]["post"]["responses"]["200"]["content"][
        "application/json"]["schema"] = {"$ref": "#/components/schemas/nope"}
    with pytest.raises(Exception):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_action_is_a_path_with_its_manifest_texts(doc):
    actions = manifest().actions
    paths = {p for p in doc["paths"] if p.startswith("/v1/actions/")}
    # SPEC 12: an action that needs a file on the server (image_path) is left out
    assert paths == {"/v1/actions/%s" % name for name in actions if name != "line_upload_rich_menu_image"}
    op_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))  # platforms name their steps after these
    for name, spec in actions.items():
        if name == "line_upload_rich_menu_image":
            continue
        op = doc["paths"]["/v1/actions/%s" % name]["post"]
        assert (op["operationId"], op["summary"], op["description"]) == (name, spec.title, spec.description)
        assert set(op["responses"]) >= {"200", "401", "404", "409", "413", "422", "502"}
        assert op["parameters"] == [{"$ref": "#/components/parameters/IdempotencyKey"}]
        assert "security" not in op  # the global bearer scheme applies


def test_service_paths_and_security(doc):
    assert set(doc["paths"]) >= {"/v1/actions", "/healthz", "/readyz", "/metrics", "/openapi.json", "/v1/webhooks/{route}"}
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "One of the config file's api_keys"}
    # LINE sends no API key; the app serves its read-only paths without one
    from line_connector.service.app import PUBLIC_PATHS

    assert doc["paths"]["/v1/webhooks/{route}"]["post"]["security"] == []
    for path in PUBLIC_PATHS:
        assert doc["paths"][path]["get"]["security"] == [], path
    route = doc["paths"]["/v1/webhooks/{route}"]["post"]["parameters"][0]
    assert route["schema"]["enum"] == ["ops"]
    idem = doc["components"]["parameters"]["IdempotencyKey"]
    assert (idem["name"], idem["in"], idem["required"]) == ("Idempotency-Key", "header", False)


def test_every_example_of_the_manifest_fits_its_request_schema(doc, real_config):
    checked = 0
    for name, spec in manifest().actions.items():
        if spec.example is None or name == "line_upload_rich_menu_image":  # needs a server file: not listed
            continue
        asset = real_config.assets_for(spec.assets)[0].name
        example = {k: v for k, v in spec.example.items() if k != "save_to"}  # SPEC 12: no server file paths
        errors = list(_request_validator(doc, name).iter_errors({"asset": asset, "inputs": example}))
        assert not errors, (name, [e.message for e in errors])
        op = doc["paths"]["/v1/actions/%s" % name]["post"]
        assert op["requestBody"]["content"]["application/json"]["example"] == {"asset": asset, "inputs": example}
        checked += 1
    assert checked == len(manifest().actions) - 1


@pytest.mark.parametrize("body, why", [
    ({"asset": "ops_line", "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                      "messages": [{"type": "text"}]}}, "text message without text"),
    ({"asset": "ops_line", "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                      "messages": [{"type": "text", "text": "x" * 5001}]}},
     "5001 > LINE's 5000-character text limit"),
    ({"asset": "ops_nx", "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                    "messages": [{"type": "text", "text": "hi"}]}}, "asset of another kind"),
    ({"asset": "nope", "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                  "messages": [{"type": "text", "text": "hi"}]}}, "unknown asset"),
    ({"asset": "ops_line"}, "no inputs (to and messages are required)"),
    ({"asset": "ops_line", "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                      "messages": [{"type": "text", "text": "hi"}]}, "extra": 1},
     "unknown top-level field"),
    ({"asset": {"token": "inline"}, "inputs": {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                               "messages": [{"type": "text", "text": "hi"}]}},
     "inline asset without allow_inline_assets"),
])
def test_the_request_schema_refuses_what_the_pack_refuses(doc, body, why):
    """The document is not merely permissive: the runner's own refusals
    (LINE's text limit: developers.line.biz/en/reference/messaging-api/#text-message,
    "Max character limit: 5000") are refused by the request schema too."""
    assert list(_request_validator(doc, "line_send_push").iter_errors(body)), why


def test_asset_and_inputs_are_required_only_where_the_app_needs_them():
    """The app (service/app.py) takes the only fitting asset when none is
    named, and {} for missing inputs."""
    one = document(_Config({"ops_line": "line_channel_access_token"}))["components"]["schemas"]
    two = document(_Config({"a": "line_channel_access_token", "b": "line_channel_access_token"}))
    two = two["components"]["schemas"]
    assert "required" not in one["line_get_quota.request"]  # {} is valid: the only asset, no inputs
    assert one["line_send_push.request"]["required"] == ["inputs"]
    assert two["line_get_quota.request"]["required"] == ["asset"]
    assert two["line_send_push.request"]["required"] == ["asset", "inputs"]


def test_inline_assets_appear_only_when_allowed():
    kinds = {"ops_line": "line_channel_access_token"}
    closed = document(_Config(kinds))["components"]["schemas"]["line_get_quota.request"]
    opened = document(_Config(kinds, inline=True))["components"]["schemas"]["line_get_quota.request"]
    assert closed["properties"]["asset"]["enum"] == ["ops_line"]
    assert opened["properties"]["asset"]["oneOf"][0]["enum"] == ["ops_line"]
    assert opened["properties"]["asset"]["oneOf"][1] == {"$ref": "#/components/schemas/InlineAsset"}


def test_the_asset_enum_lists_only_assets_that_fit(doc):
    schemas = doc["components"]["schemas"]
    assert schemas["line_send_push.request"]["properties"]["asset"]["enum"] == ["ops_line", "ops_oauth", "ops_jwt"]
    assert schemas["line_list_channel_token_key_ids.request"]["properties"]["asset"]["enum"] == ["ops_jwt"]
    assert schemas["line_issue_channel_token.request"]["properties"]["asset"]["enum"] == ["ops_oauth"]
    assert schemas["nxcloud_send_line.request"]["properties"]["asset"]["enum"] == ["ops_nx"]
    assert schemas["sobot_query_task_list.request"]["properties"]["asset"]["enum"] == ["ops_sobot"]
    assert schemas["line_parse_webhook.request"]["properties"]["asset"]["enum"] == ["ops_secret"]


def test_no_custom_keyword_is_left_and_each_is_kept_as_an_extension(doc):
    text = json.dumps(doc)
    for keyword, extension in CUSTOM_KEYWORDS.items():
        assert '"%s":' % keyword not in text, keyword
    assert '"x-maxUtf16Length":' in text and '"x-maxGraphemes":' in text
    assert '"discriminator"' not in text  # said as if/then by resolved_schema
    assert '"$ref": "#/$defs/' not in text  # every reference points into components
    refs = set()

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)
    collect(doc)
    for ref in refs:
        section, _, name = ref[len("#/components/"):].partition("/")
        assert ref.startswith("#/components/") and name in doc["components"][section], ref


def test_portable_renames_keywords_not_property_names():
    schema = {"type": "object", "properties": {
        "finite": {"type": "number", "finite": True},
        "text": {"type": "string", "maxUtf16Length": 20, "maxLength": 50, "default": {"finite": 1}},
        "label": {"type": "string", "maxUtf16Length": 40, "maxLength": 10}}}
    out = portable(schema)
    assert out["properties"]["finite"] == {"type": "number", "x-finite": True}
    assert out["properties"]["text"] == {"type": "string", "x-maxUtf16Length": 20, "maxLength": 20,
                                         "default": {"finite": 1}}
    assert out["properties"]["label"]["maxLength"] == 10
    assert schema["properties"]["finite"] == {"type": "number", "finite": True}  # input untouched


def test_the_document_is_deterministic(real_config):
    first = json.dumps(document(real_config))
    assert json.dumps(document(real_config)) == first  # same order, not just same content


def test_no_secret_of_the_config_is_in_the_document(doc):
    text = json.dumps(doc)
    for secret in (LONG_TOKEN, API_KEY, "chsecretCanary0123456789abcdefAB", "as-Canary-77", "key-Canary-55"):
        assert secret not in text


def test_it_builds_without_the_service_extras():
    """``import line_connector.service.openapi`` needs neither waitress nor
    redis nor prometheus_client: run in a process where they cannot import."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('waitress', 'redis', 'prometheus_client', 'schemathesis'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from line_connector.service.openapi import document\n"
            "class C:\n"
            "    assets = {}; webhooks = {}; allow_inline_assets = False\n"
            "    def assets_for(self, accepted): return []\n"
            "d = document(C())\n"
            "print(len(d['paths']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # every action but the file upload, and the 5 service paths (no webhook route configured: none listed)
    assert int(proc.stdout) == len(manifest().actions) - 1 + 5


def test_the_readme_service_config_loads_and_its_document_is_valid(tmp_path):
    """The README's "Service" config is the one a reader copies: it must
    load as written (with its variables set) and give a valid document."""
    import os
    import re

    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    from line_connector.config import load_config
    from line_connector.paths import PACK_ROOT

    readme = open(os.path.join(PACK_ROOT, "README.md"), encoding="utf-8").read()
    section = readme[readme.index("\n## Service\n"):]
    section = section[:section.index("\n## ", 5)]
    # the config a reader runs: written by the shell block's `cat > service.yaml <<'EOF'`
    yaml_text = re.search(r"^cat > service\.yaml <<'EOF'\n(.*?)^EOF$", section, re.S | re.M).group(1)
    path = tmp_path / "service.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    env = {name: "http://127.0.0.1:8090" if name.endswith("_URL") else "readme-value-%s-0123456789abcdef" % name.lower()
           for name in re.findall(r"\$\{(\w+)\}", yaml_text)}
    config = load_config(str(path), environ=env)
    assert {a.kind for a in config.assets.values()} == {"line_channel_access_token", "line_channel_secret",
                                                        "nxcloud", "sobot"}
    assert config.state and list(config.webhooks) == ["ops"]
    validate(document(config), cls=OpenAPIV31SpecValidator)


# ---------------------------------------------------------------- SPEC 12: as importers meet it

def _schemas_in(node, where="#"):
    """Every schema object of the document's components, with its place."""
    if isinstance(node, dict):
        yield where, node
        for key in ("properties", "patternProperties", "$defs"):
            for name, sub in (node.get(key) or {}).items():
                yield from _schemas_in(sub, "%s/%s/%s" % (where, key, name))
        for key in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
            if isinstance(node.get(key), dict):
                yield from _schemas_in(node[key], "%s/%s" % (where, key))
        for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            for i, sub in enumerate(node.get(key) or ()):
                yield from _schemas_in(sub, "%s/%s/%d" % (where, key, i))


def test_titles_are_unique_and_every_array_has_items(doc):
    titles = {}
    for name, schema in doc["components"]["schemas"].items():
        for where, node in _schemas_in(schema, name):
            if "title" in node:
                assert node["title"] not in titles, (where, titles.get(node["title"]))
                titles[node["title"]] = where
            types = node.get("type")
            if types == "array" or (isinstance(types, list) and "array" in types):
                assert "items" in node or "prefixItems" in node, where
    # each component is titled with its own (unique) name, which code generators name classes after
    assert titles["line_get_quota.inputs"] == "line_get_quota.inputs"
    # folded names are unique too: flexBox and flex_box would both become class FlexBox
    folded = ["".join(c for c in n.lower() if c.isalnum()) for n in doc["components"]["schemas"]]
    assert len(folded) == len(set(folded))


def test_no_server_file_input_and_no_pack_keyword_unprefixed(doc):
    text = json.dumps(doc)
    for name, schema in doc["components"]["schemas"].items():
        if name.endswith(".inputs"):
            assert not set(schema.get("properties", {})) & {"save_to", "image_path"}, name
            assert not set(schema.get("required", ())) & {"save_to", "image_path"}, name
    assert '"errorMessage"' not in text and '"x-errorMessage"' in text
    content = doc["components"]["schemas"]["line_get_message_content.inputs"]
    assert "messageId" in content["properties"]


def test_a_webhook_path_is_listed_only_for_configured_routes():
    kinds = {"ops_line": "line_channel_access_token", "ops_secret": "line_channel_secret"}
    assert "/v1/webhooks/{route}" not in document(_Config(kinds))["paths"]
    listed = document(_Config(kinds, webhooks={"ops": {}, "alerts": {}}))["paths"]["/v1/webhooks/{route}"]
    assert listed["post"]["parameters"][0]["schema"]["enum"] == ["alerts", "ops"]


def test_the_idempotency_key_pins_no_value(doc):
    """An importer copies an example or default into every request it makes,
    and the same key on every call would replay the first answer forever."""
    param = doc["components"]["parameters"]["IdempotencyKey"]
    assert not {"example", "examples"} & set(param)
    assert not {"default", "example", "examples", "const", "enum"} & set(param["schema"])
    assert "fresh unique value" in param["description"]


def test_servers_is_the_base_url_given(real_config):
    assert document(real_config, "http://127.0.0.1:8080")["servers"][0]["url"] == "http://127.0.0.1:8080"
    assert document(real_config)["servers"][0]["url"] == "/"


def test_request_examples_are_on_the_media_type_and_the_schema(doc):
    op = doc["paths"]["/v1/actions/line_send_push"]["post"]
    example = op["requestBody"]["content"]["application/json"]["example"]
    assert doc["components"]["schemas"]["line_send_push.request"]["examples"] == [example]
