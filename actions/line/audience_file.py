"""Audiences for uploading user IDs, by file: one multipart request carries
up to 1,500,000 IDs (developers.line.biz/en/reference/messaging-api/:
#create-upload-audience-group-by-file, #update-upload-audience-group-by-file;
"A text file with one user ID or IFA entered per line. Specify text/plain as
Content-Type. Max file number: 1. Max number: 1,500,000"). Sent to LINE's
content host (``data_url``).

The IDs come from ``file`` (a local text file, one per line; blank lines
ignored) or from ``userIds`` (a list). Every ID is checked against LINE's
format (a user ID, or an IFA when the audience is for IFAs) and counted
before anything is sent; duplicates are dropped, first occurrence kept. The
multipart body is encoded by urllib3 (requests' own transport library).

Retries, as for line_create_audience / line_add_audience_users: creating is
sent once (a repeat makes a second audience: the note says to list audiences
by description first); adding is resent like a read (an audience is a set,
so a repeat adds no one new).
"""
import re

from .audience import UNKNOWN_CREATE
from .base import LineAction

#: "Max number: 1,500,000" (#create-upload-audience-group-by-file)
MAX_IDS = 1500000
#: a line longer than this cannot be an ID: the file is not one
MAX_LINE = 64
USER_ID = re.compile(r"U[0-9a-f]{32}\Z")
IFA = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
PATH = "/v2/bot/audienceGroup/upload/byFile"


class _ByFile(LineAction):
    base_field = "data_url"
    local_paths = ("file",)
    #: the form fields besides the file, in LINE's order
    form_fields = ()

    def ids(self, inputs, is_ifa):
        """The IDs, checked, de-duplicated; InputError (nothing sent) naming
        the field and the line or index."""
        pattern, what = (IFA, "an IFA (a UUID)") if is_ifa else (USER_ID, "a user ID (U + 32 hex digits)")
        if "file" in inputs:
            field, source = "file", self._lines(inputs["file"])
        else:
            field, source = "userIds", enumerate(inputs["userIds"])
        seen = {}
        for where, value in source:
            if not pattern.match(value):
                label = "line %d" % (where + 1) if field == "file" else "[%d]" % where
                raise self.input_error(field + ("" if field == "file" else label),
                                       ("%s is not %s" % (label, what)) if field == "file" else "must be %s" % what)
            seen.setdefault(value, None)
            if len(seen) > MAX_IDS:
                raise self.input_error(field, "holds more than %d IDs; LINE takes at most %d per file"
                                       % (MAX_IDS, MAX_IDS))
        if not seen:
            raise self.input_error(field, "holds no ID")
        return list(seen)

    def _lines(self, path):
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise self.input_error("file", "cannot be read: %s" % (exc.strerror or type(exc).__name__))
        with handle:
            for number, raw in enumerate(handle):
                if len(raw) > MAX_LINE + 2:
                    raise self.input_error("file", "line %d is too long for an ID (%d bytes)" % (number + 1, len(raw)))
                try:
                    text = raw.decode("ascii").strip()
                except UnicodeDecodeError:
                    raise self.input_error("file", "line %d is not ASCII text" % (number + 1))
                if text:
                    yield number, text

    def form(self, inputs):
        return {}

    def build(self, inputs):
        from urllib3.filepost import encode_multipart_formdata

        fields = [(k, v) for k, v in self.form(inputs).items()]
        ids = self.ids(inputs, self.is_ifa(inputs))
        fields.append(("file", ("user_ids.txt", ("\n".join(ids) + "\n").encode("ascii"), "text/plain")))
        body, content_type = encode_multipart_formdata(fields)
        request = self.line_request(data=body, content_type=content_type, path=PATH,
                                    extra={"ids": len(ids)}, audience=inputs.get("audienceGroupId"))
        return [request]

    def is_ifa(self, inputs):
        return False


class CreateAudienceFromFile(_ByFile):
    """POST {data_url}/v2/bot/audienceGroup/upload/byFile: a new audience."""
    method = "POST"
    path = PATH

    def form(self, inputs):
        out = {"description": inputs["description"]}
        if "isIfaAudience" in inputs:
            out["isIfaAudience"] = "true" if inputs["isIfaAudience"] else "false"
        if "uploadDescription" in inputs:
            out["uploadDescription"] = inputs["uploadDescription"]
        return out

    def is_ifa(self, inputs):
        return bool(inputs.get("isIfaAudience"))

    def judge(self, request, result):
        ok = super().judge(request, result)
        if result.get("delivery") == "unknown":
            result["note"] = "outcome unknown: the request may have reached LINE" + UNKNOWN_CREATE
        return ok


class AddAudienceUsersFromFile(_ByFile):
    """PUT {data_url}/v2/bot/audienceGroup/upload/byFile: more users for an
    audience (IFAs when the audience is an IFA one: ``isIfaAudience``)."""
    method = "PUT"
    path = PATH
    idempotent = True

    def form(self, inputs):
        out = {"audienceGroupId": str(inputs["audienceGroupId"])}
        if "uploadDescription" in inputs:
            out["uploadDescription"] = inputs["uploadDescription"]
        return out

    def is_ifa(self, inputs):
        return bool(inputs.get("isIfaAudience"))
