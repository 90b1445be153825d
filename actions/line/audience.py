"""Audiences for uploading user IDs: create, add users, get, list, delete.

LINE takes at most 10,000 IDs per request (Messaging API reference,
#create-upload-audience-group and #update-upload-audience-group), so an
audience of any size is one POST /v2/bot/audienceGroup/upload with the first
10,000 IDs, then PUT /v2/bot/audienceGroup/upload with the audienceGroupId
that POST answered, 10,000 IDs each. Every request is one result that lists
the IDs it carried (``recipients``), so a caller can resend exactly the IDs
of a failed request with line_add_audience_users.

Retries:

* Creating an audience is a write with no retry key: LINE would create a
  second audience with the same name, so the POST is resent only when the
  connection was never made. On "outcome unknown" the caller lists audiences
  by description (line_list_audiences) before creating again.
* Adding users is resent like a read (5xx, timeouts): an audience for
  uploading user IDs is a *set* of users (LINE: "a set of users specified
  with user IDs or IFA", docs/messaging-api/using-audience), and the PUT
  names the group and the IDs, so a repeat adds no one new; the only trace
  it leaves is one more upload job in the audience's ``jobs`` list.
* The chunks go one after another, never in parallel: LINE limits concurrent
  operations per audienceGroupId on exactly these two endpoints (using-audience,
  "Limit on concurrent operations").
"""

from line_connector.action import ChunkedAction
from line_connector.http import SAFE_RETRY

from .base import LineAction, LinePagedAction

#: LINE: "Max number: 10,000" audiences per create or add request
AUDIENCE_CHUNK = 10000

UNKNOWN_CREATE = (
    "; LINE may have created the audience: list audiences with this description (line_list_audiences "
    "description=...) before creating it again; if it is there, add these IDs with line_add_audience_users")


def _ids(inputs):
    """Every ID of ``audiences`` (LINE's [{"id"}] shape) and ``userIds`` (a
    plain list), in the caller's order."""
    return [a["id"] for a in inputs.get("audiences", ())] + list(inputs.get("userIds", ()))


class _Upload(ChunkedAction, LineAction):
    """What create and add share: the IDs, de-duplicated (first occurrence
    kept), 10,000 per request."""
    chunk_size = AUDIENCE_CHUNK

    def items(self, inputs):
        return _ids(inputs)

    def put_request(self, inputs, group_id, index, chunk, total):
        body = {"audiences": [{"id": i} for i in chunk]}
        if group_id is not None:
            body = dict(audienceGroupId=group_id, **body)
        if "uploadDescription" in inputs:
            body["uploadDescription"] = inputs["uploadDescription"]
        request = self.line_request(body=body, path="/v2/bot/audienceGroup/upload", field="audiences",
                                    extra=self.chunk_extra(index, chunk, total), method="PUT")
        # PUT even from CreateAudience (a POST action), paced by the PUT
        # endpoint's rate limit; a repeat of the same PUT adds no one new (see
        # the module docstring), so it is resent like a read
        return request.replace(retry=SAFE_RETRY)


class CreateAudience(_Upload):
    """POST /v2/bot/audienceGroup/upload with the first 10,000 IDs, then PUT
    the rest to the audienceGroupId LINE answered.

    A failed POST sends nothing more (there is no audience to add to); the
    chunks it would have carried are reported "not sent", IDs included. A
    failed PUT does not stop the next ones: each adds other IDs to an
    audience that exists, and each result names its IDs, so the caller
    resends only the failed ones (line_add_audience_users), which is safe.
    """
    method = "POST"
    path = "/v2/bot/audienceGroup/upload"
    idempotent = False

    def chunks(self, inputs):
        # an audience may be created empty (LINE: "You can specify an empty array")
        return super().chunks(inputs) or [[]]

    def create_request(self, inputs, chunk, total):
        body = {"description": inputs["description"], "isIfaAudience": bool(inputs.get("isIfaAudience", False))}
        if "uploadDescription" in inputs:
            body["uploadDescription"] = inputs["uploadDescription"]
        body["audiences"] = [{"id": i} for i in chunk]
        return self.line_request(body=body, extra=self.chunk_extra(0, chunk, total), field="audiences")

    def build(self, inputs):
        """All the requests, for a dry run: the PUTs carry no audienceGroupId,
        which only the POST's answer gives."""
        chunks = self.chunks(inputs)
        requests = [self.create_request(inputs, chunks[0], len(chunks))]
        for index, chunk in enumerate(chunks[1:], 1):
            request = self.put_request(inputs, None, index, chunk, len(chunks))
            request.extra["note"] = "audienceGroupId: the one LINE answers to the POST"
            requests.append(request)
        return requests

    def execute(self, inputs):
        chunks = self.chunks(inputs)
        total = len(chunks)
        # the inputs were checked whole (schema) before this runs: a bad ID sends nothing
        first = self.create_request(inputs, chunks[0], total)
        created = self.send_one(first)
        self._tick(1, total)
        body = created.get("json_body") if isinstance(created.get("json_body"), dict) else {}
        group_id = body.get("audienceGroupId")
        if created["ok"] and not (isinstance(group_id, int) and not isinstance(group_id, bool) and group_id > 0):
            created["ok"] = False
            created["note"] = ("malformed answer: LINE accepted the audience but its answer has no audienceGroupId, "
                               "so the remaining IDs were not sent; find the audience with line_list_audiences")
        if not created["ok"]:
            if created.get("delivery") == "unknown" or created["status_code"] >= 500:
                created["note"] = created.get("note", "outcome unknown") + UNKNOWN_CREATE
            rest = [self._not_sent(index, chunk, total) for index, chunk in enumerate(chunks[1:], 1)]
            return [created] + rest, False
        created["audienceGroupId"] = group_id
        results = [created]
        for index, chunk in enumerate(chunks[1:], 1):
            result = self.send_one(self.put_request(inputs, group_id, index, chunk, total))
            result["audienceGroupId"] = group_id
            results.append(result)
            self._tick(len(results), total)
        return results, all(r["ok"] for r in results)

    def _not_sent(self, index, chunk, total):
        return dict(self.chunk_extra(index, chunk, total), status_code=0, reason="Not sent", response_headers={},
                    json_body=None, ok=False, delivery="not sent",
                    note="not sent: the audience was not created (see the first result), so there was nothing "
                         "to add these IDs to")


class AddAudienceUsers(_Upload):
    """PUT /v2/bot/audienceGroup/upload, 10,000 IDs per request, to an
    existing audience. Every request is sent whatever the others answer."""
    method = "PUT"
    path = "/v2/bot/audienceGroup/upload"
    idempotent = True

    def chunk_request(self, inputs, index, chunk, total):
        return self.put_request(inputs, inputs["audienceGroupId"], index, chunk, total)


class GetAudience(LineAction):
    """GET /v2/bot/audienceGroup/{audienceGroupId}: the audience and its upload jobs."""
    path = "/v2/bot/audienceGroup/{audienceGroupId}"


class DeleteAudience(LineAction):
    """DELETE /v2/bot/audienceGroup/{audienceGroupId}. Deleting twice cannot
    delete anything else (the second answers that the group is gone: LINE's
    400 AUDIENCE_GROUP_NOT_FOUND, manage-audience.yml), so it is resent like
    a read."""
    method = "DELETE"
    path = "/v2/bot/audienceGroup/{audienceGroupId}"
    idempotent = True
    destructive = True
    gone_on_repeat = (400, "there is no such audience (any more)", "deleted it")

    def judge(self, request, result):
        return self.judge_empty_ok(super().judge(request, result), result)

    @staticmethod
    def judge_empty_ok(ok, result):
        # LINE's reference gives this endpoint no response body (manage-audience.yml:
        # "200 OK", no content): an empty 2xx body is success, not a malformed answer
        if not ok and 200 <= result["status_code"] < 300 and result["json_body"] is None \
                and not result.get("raw_body") and not result.get("error"):
            result.pop("note", None)
            return True
        return ok


class ListAudiences(LinePagedAction):
    """GET /v2/bot/audienceGroup/list, page by page (``page``/``hasNextPage``)."""
    path = "/v2/bot/audienceGroup/list"
    fields = ("page", "size", "description", "status", "includesExternalPublicGroups", "createRoute")
    page_items = "audienceGroups"
    paging = "number"

    @staticmethod
    def _with_page(inputs):
        # LINE requires page (>= 1): one page, or the walk, starts at 1 unless told
        return dict(inputs, page=inputs.get("page", 1))

    def build(self, inputs):
        return super().build(self._with_page(inputs))

    def execute(self, inputs):
        return super().execute(self._with_page(inputs))

    def line_request(self, body=None, params=None, **kw):
        # LINE reads query booleans as true/false; requests would write True/False
        if params:
            params = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
        return super().line_request(body=body, params=params, **kw)
