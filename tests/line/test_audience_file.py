"""Audiences by file (SPEC 14): one multipart upload of up to 1,500,000 IDs
from a text file or a list. Reference: developers.line.biz/en/reference/messaging-api/
#create-upload-audience-group-by-file, #update-upload-audience-group-by-file
("A text file with one user ID or IFA entered per line. Specify text/plain as
Content-Type. Max file number: 1. Max number: 1,500,000")."""
import json

import pytest
import requests
import responses

from helpers import USER, USER2
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_audience import DEMO_AUDIENCE_ID
from line_connector.validation import iter_errors  # noqa: F401  (schemas load through it)

TOKEN = {"token": "t" * 20}
DATA = "https://api-data.line.me/v2/bot/audienceGroup/upload/byFile"
IFA1 = "123e4567-e89b-42d3-a456-426614174000"


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def run(sb, name, inputs, **kw):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs, **kw)


def test_create_from_a_file_then_add_from_a_list(sb, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("%s\n\n%s\r\n%s\n" % (USER, USER2, USER))  # a blank line, CRLF, a duplicate
    (created,) = run(sb, "line_create_audience_from_file", {"description": "from file", "file": str(ids),
                                                            "uploadDescription": "batch 1"})
    assert created["status_code"] == 202 and created["ids"] == 2
    group = created["json_body"]["audienceGroupId"]
    assert list(sb.line.audiences[group]["users"]) == [USER, USER2]
    extra = "U" + "e" * 32
    (added,) = run(sb, "line_add_audience_users_from_file", {"audienceGroupId": group, "userIds": [extra]})
    assert added["ok"] and extra in sb.line.audiences[group]["users"]


def test_an_ifa_audience(sb):
    (created,) = run(sb, "line_create_audience_from_file", {"description": "ifa", "isIfaAudience": True,
                                                            "userIds": [IFA1]})
    assert created["json_body"]["isIfaAudience"] is True
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_audience_from_file", {"description": "ifa", "isIfaAudience": True, "userIds": [USER]})
    assert exc.value.details[0]["path"] == "inputs.userIds[0]"


@pytest.mark.parametrize("content,message", [
    ("%s\nnot-an-id\n" % USER, "line 2"),
    ("%s\n%s\n" % (USER, "U" + "0" * 200), "line 2"),
    ("\n\n", "no ID"),
    (b"\xff\xfe" + b"U" * 10, "line 1"),
])
def test_a_bad_file_is_refused_before_sending_naming_the_line(sb, tmp_path, content, message):
    path = tmp_path / "ids.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_audience_from_file", {"description": "x", "file": str(path)})
    assert exc.value.details[0]["path"] == "inputs.file" and message in exc.value.details[0]["message"]
    assert sb.requests == 0


def test_more_ids_than_line_takes_are_refused(sb, tmp_path, monkeypatch):
    from line_connector.actions.line import audience_file

    monkeypatch.setattr(audience_file, "MAX_IDS", 2)  # the rule, not 1.5 million lines on disk
    path = tmp_path / "ids.txt"
    path.write_text("\n".join("U%032x" % i for i in range(3)))
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_audience_from_file", {"description": "x", "file": str(path)})
    assert "at most 2" in exc.value.details[0]["message"] and sb.requests == 0


def test_exactly_one_source_and_no_local_file_through_the_service_doors(sb, tmp_path):
    with pytest.raises(InputError):
        run(sb, "line_create_audience_from_file", {"description": "x"})
    with pytest.raises(InputError):
        run(sb, "line_create_audience_from_file", {"description": "x", "userIds": [USER], "file": "a.txt"})
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_audience_from_file", {"description": "x", "file": str(tmp_path / "a.txt")},
            local_files=False)
    assert exc.value.details[0]["path"] == "inputs.file"


@responses.activate
def test_create_is_sent_once_add_is_resent():
    responses.add(responses.POST, DATA, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_create_audience_from_file", TOKEN, {"description": "d", "userIds": [USER]},
                   client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1 and "line_list_audiences" in exc.value.output[0]["note"]
    responses.add(responses.PUT, DATA, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.add(responses.PUT, DATA, status=202, json={})
    (result,) = run_action("line_add_audience_users_from_file", TOKEN, {"audienceGroupId": 5, "userIds": [USER]},
                           client=HttpClient(sleep=lambda s: None))
    assert result["ok"] and len(responses.calls) == 3


def test_the_multipart_body_is_what_lines_openapi_describes(sb):
    """Parsed back as a server would, the form holds exactly the fields of
    the operation's multipart schema, and the file part is text/plain."""
    import os

    import yaml

    from line_connector.sandbox.line_audience import _multipart
    from openapi import SPEC_DIR

    with open(os.path.join(SPEC_DIR, "manage-audience.yml"), encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)["paths"]["/v2/bot/audienceGroup/upload/byFile"]
    for action, method, inputs in [
            ("line_create_audience_from_file", "post", {"description": "d", "isIfaAudience": False,
                                                        "uploadDescription": "u", "userIds": [USER]}),
            ("line_add_audience_users_from_file", "put", {"audienceGroupId": DEMO_AUDIENCE_ID, "userIds": [USER]})]:
        content = spec[method]["requestBody"]["content"]["multipart/form-data"]
        seen = []
        original = sb.dispatch
        sb.dispatch = lambda incoming: seen.append(incoming) or original(incoming)
        run(sb, action, inputs)
        sb.dispatch = original
        form, files = _multipart(seen[-1])
        assert set(form) | set(files) <= set(content["schema"]["properties"])
        assert set(content["schema"]["required"]) <= set(form) | set(files)
        assert files["file"] == (content["encoding"]["file"]["contentType"], (USER + "\n").encode())


def test_the_sdk_uploads_files_to_the_sandbox(sb, tmp_path):
    from linebot.v3.audience import ApiClient, Configuration, CreateAudienceGroupResponse, ManageAudienceBlob

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        blob = ManageAudienceBlob(client)
        first, second = tmp_path / "first.txt", tmp_path / "second.txt"  # the SDK takes file paths
        first.write_text(USER + "\n")
        second.write_text(USER2 + "\n")
        created = blob.create_audience_for_uploading_user_ids(file=str(first), description="sdk")
        assert isinstance(created, CreateAudienceGroupResponse)
        blob.add_user_ids_to_audience(file=str(second), audience_group_id=created.audience_group_id)
    assert list(sb.line.audiences[created.audience_group_id]["users"]) == [USER, USER2]
    assert json.dumps(created.to_dict())
