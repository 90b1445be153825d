"""Sandbox emulation of LINE's audiences for uploading user IDs (by JSON).

Endpoints (developers.line.biz/en/reference/messaging-api/, shapes from
LINE's manage-audience.yml):

* POST /v2/bot/audienceGroup/upload (#create-upload-audience-group): 202
  with audienceGroupId, createRoute MESSAGING_API, type UPLOAD, description,
  created (UNIX seconds), permission READ_WRITE, expireTimestamp (180 days
  later: an audience stops being usable after 180 days) and isIfaAudience;
* PUT /v2/bot/audienceGroup/upload (#update-upload-audience-group): 202 {};
* GET /v2/bot/audienceGroup/{audienceGroupId} (#get-audience-group): the
  audienceGroup and its upload jobs (newest first, at most 50);
* GET /v2/bot/audienceGroup/list (#get-audience-groups): page (required,
  >= 1), size (default 20, at most 40), description (partial,
  case-insensitive), status, createRoute; answers page, size, totalCount,
  readWriteAudienceGroupTotalCount, hasNextPage, audienceGroups;
* DELETE /v2/bot/audienceGroup/{audienceGroupId} (#delete-audience-group): 200.

Refusals are LINE's 400 with the error code in ``details[].message`` and
the field in ``details[].property``, as manage-audience.yml's example of an
unknown audience shows (``{"message": "audience group not found",
"details": [{"message": "AUDIENCE_GROUP_NOT_FOUND"}]}``; LINE answers 400,
not 404, for an unknown audienceGroupId): more than 10,000 IDs in one
request, a description missing, longer than 120 characters or holding a
control character, an ID that is not a user ID (or, for an IFA audience,
not an IFA), more than 1,000 audiences.

An audience is a set: adding an ID it already holds changes nothing but
adds a job. Narrowcasts are not routed through audiences here (line.py
sends them to ``friends``).

Demo data: ``DEMO_AUDIENCE_ID`` (5614991017776, the audience the
line_send_narrowcast docs example targets), "Demo: incident responders",
holding ``DEMO_AUDIENCE_USERS``.
"""
import re

from .server import Reply

DEMO_AUDIENCE_ID = 5614991017776
DEMO_AUDIENCE_DESCRIPTION = "Demo: incident responders"
DEMO_AUDIENCE_USERS = ("U4af4980629a0b1c2d3e4f5a6b7c8d9e0", "Ub1a2c3d4e5f60718293a4b5c6d7e8f90",
                       "Uc0ffee00c0ffee00c0ffee00c0ffee00")
DEMO_CREATED = 1767571200       # 2026-01-05T00:00:00Z

MAX_IDS_PER_REQUEST = 10000     # "Max number: 10,000" (create and add)
MAX_DESCRIPTION = 120           # "Max character limit: 120"
MAX_AUDIENCES = 1000            # "You have already created the maximum number of audiences (1,000)"
MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 40, 20
MAX_JOBS_SHOWN = 50             # GetAudienceDataResponse.jobs: "Max: 50"
EXPIRY_SECONDS = 180 * 24 * 3600
FIRST_ID = 5614991017777        # new audiences count up from the demo's

USER_ID = re.compile(r"U[0-9a-f]{32}\Z")
IFA = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
STATUSES = ("IN_PROGRESS", "READY", "FAILED", "EXPIRED", "INACTIVE", "ACTIVATING")
ROUTES = ("OA_MANAGER", "MESSAGING_API", "POINT_AD", "AD_MANAGER")


def _new_audience(state, group_id, description, is_ifa, created, users=(), upload_description=None):
    audience = {"audienceGroupId": group_id, "description": description, "isIfaAudience": is_ifa,
                "created": created, "users": dict.fromkeys(users), "jobs": []}
    _add_job(state, audience, list(users), upload_description, created)
    return audience


def _add_job(state, audience, ids, upload_description, when):
    state.audience_job_seq += 1
    job = {"audienceGroupJobId": state.audience_job_seq, "audienceGroupId": audience["audienceGroupId"],
           "type": "DIFF_ADD", "jobStatus": "FINISHED", "audienceCount": len(ids), "created": when}
    if upload_description is not None:
        job["description"] = upload_description
    audience["jobs"].insert(0, job)
    audience["users"].update(dict.fromkeys(ids))


def install(state):
    """The audiences (by audienceGroupId) and the demo audience."""
    state.audience_job_seq = 0
    state.next_audience_id = FIRST_ID
    state.audiences = {DEMO_AUDIENCE_ID: _new_audience(state, DEMO_AUDIENCE_ID, DEMO_AUDIENCE_DESCRIPTION, False,
                                                        DEMO_CREATED, DEMO_AUDIENCE_USERS, "demo upload")}
    shared = _new_audience(state, DEMO_SHARED_AUDIENCE_ID, "Demo: shared from Business Manager", False,
                           DEMO_CREATED, DEMO_AUDIENCE_USERS[:2])
    shared.update(permission="READ", createRoute="OA_MANAGER")
    state.shared_audiences = {DEMO_SHARED_AUDIENCE_ID: shared}


def _public(audience):
    """The AudienceGroup object LINE shows for an audience (uploaded user
    IDs, or CLICK / IMP with the request ID and URL it was made from)."""
    out = {"audienceGroupId": audience["audienceGroupId"], "type": audience.get("type", "UPLOAD"),
           "description": audience["description"], "status": "READY", "audienceCount": len(audience["users"]),
           "created": audience["created"], "permission": audience.get("permission", "READ_WRITE"),
           "createRoute": audience.get("createRoute", "MESSAGING_API"),
           "isIfaAudience": audience["isIfaAudience"], "expireTimestamp": audience["created"] + EXPIRY_SECONDS}
    out.update({k: audience[k] for k in ("requestId", "clickUrl") if k in audience})
    return out


#: an audience shared from Business Manager (GET .../shared/...), with its owner
DEMO_SHARED_AUDIENCE_ID = 4389303728991
DEMO_SHARED_OWNER = {"serviceType": "bm", "id": "bm-demo-owner", "name": "Demo Business Manager"}
#: request IDs of broadcasts/narrowcasts older than the sandbox that click/imp audiences may name
SENT_MESSAGE_WINDOW = 60 * 86400  # "sent in the past 60 days"


def _error(message, details):
    return Reply(400, {"message": message, "details": [dict({"message": code}, **({"property": prop} if prop else {}))
                                                       for prop, code in details]})


def _body_error(details):
    return _error("The request body has %d error(s)" % len(details), details)


def _not_found():
    return _error("audience group not found", [(None, "AUDIENCE_GROUP_NOT_FOUND")])


def _description_details(body):
    """LINE's rules on the ``description`` of a new audience, and on ``uploadDescription`` when given."""
    details = []
    description = body.get("description")
    if not isinstance(description, str) or not description:
        details.append(("description", "must be specified"))
    elif len(description) > MAX_DESCRIPTION:
        details.append(("description", "AUDIENCE_GROUP_NAME_SIZE_OVER"))
    elif CONTROL.search(description):
        details.append(("description", "AUDIENCE_GROUP_NAME_WRONG"))
    upload_description = body.get("uploadDescription")
    if upload_description is not None and not isinstance(upload_description, str):
        details.append(("uploadDescription", "The property, uploadDescription, in the request body is invalid"))
    return details


def _new_group_id(state):
    """(the next audience group ID, None), or (None, LINE's 400 at the cap on
    audiences). The caller holds ``state.lock``."""
    if len(state.audiences) >= MAX_AUDIENCES:
        return None, _error("Audience group count max over", [(None, "AUDIENCE_GROUP_COUNT_MAX_OVER")])
    state.next_audience_id += 1
    return state.next_audience_id - 1, None


def _check_ids(body, is_ifa):
    """[(property, code)] for the body's ``audiences``: a list of {"id"} of the
    audience's kind, at most 10,000."""
    audiences = body.get("audiences", [])
    if not isinstance(audiences, list):
        return [("audiences", "The property, audiences, in the request body is invalid")], []
    if len(audiences) > MAX_IDS_PER_REQUEST:
        return [("audiences", "UPLOAD_AUDIENCE_GROUP_TOO_MANY_AUDIENCE_IDS")], []
    ids, details = [], []
    wanted = IFA if is_ifa else USER_ID
    for i, item in enumerate(audiences):
        value = item.get("id") if isinstance(item, dict) else None
        if not isinstance(value, str) or not wanted.match(value):
            details.append(("audiences[%d].id" % i, "UPLOAD_AUDIENCE_GROUP_INVALID_AUDIENCE_ID_FORMAT"))
            if len(details) >= 10:
                break
        else:
            ids.append(value)
    return details, ids


def _unknown_fields(body, allowed):
    return [(k, "The property, %s, in the request body is invalid" % k) for k in body if k not in allowed]


def routes(emulator):
    state = emulator.state

    def now():
        return int(state.clock())

    def create(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        details = _unknown_fields(body, ("description", "isIfaAudience", "uploadDescription", "audiences"))
        details += _description_details(body)
        description, upload_description = body.get("description"), body.get("uploadDescription")
        is_ifa = body.get("isIfaAudience", False)
        if not isinstance(is_ifa, bool):
            details.append(("isIfaAudience", "The property, isIfaAudience, in the request body is invalid"))
            is_ifa = False
        id_details, ids = _check_ids(body, is_ifa)
        details += id_details
        if details:
            return _body_error(details)
        with state.lock:
            group_id, full = _new_group_id(state)
            if full:
                return full
            created = now()
            state.audiences[group_id] = _new_audience(state, group_id, description, is_ifa, created, ids,
                                                      upload_description)
        return Reply(202, {"audienceGroupId": group_id, "createRoute": "MESSAGING_API", "type": "UPLOAD",
                           "description": description, "created": created, "permission": "READ_WRITE",
                           "expireTimestamp": created + EXPIRY_SECONDS, "isIfaAudience": is_ifa})

    def add(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        details = _unknown_fields(body, ("audienceGroupId", "uploadDescription", "audiences"))
        group_id = body.get("audienceGroupId")
        if not isinstance(group_id, int) or isinstance(group_id, bool):
            details.append(("audienceGroupId", "must be specified"))
        if not isinstance(body.get("audiences"), list) or not body["audiences"]:
            details.append(("audiences", "must be specified"))
        upload_description = body.get("uploadDescription")
        if upload_description is not None and not isinstance(upload_description, str):
            details.append(("uploadDescription", "The property, uploadDescription, in the request body is invalid"))
        if details:
            return _body_error(details)
        with state.lock:
            audience = state.audiences.get(group_id)
            if audience is None:
                return _not_found()
            id_details, ids = _check_ids(body, audience["isIfaAudience"])
            if id_details:
                return _body_error(id_details)
            _add_job(state, audience, ids, upload_description, now())
        return Reply(202, {})

    def get_one(req):
        group_id = _group_id(req)
        with state.lock:
            audience = state.audiences.get(group_id)
            if audience is None:
                return _not_found()
            return Reply(200, {"audienceGroup": _public(audience),
                               "jobs": [dict(j) for j in audience["jobs"][:MAX_JOBS_SHOWN]]})

    def delete(req):
        group_id = _group_id(req)
        with state.lock:
            if state.audiences.pop(group_id, None) is None:
                return _not_found()
        return Reply(200, {})

    def list_(req):
        details = []
        page = _int_arg(req, "page", None)
        if page is None or page < 1:
            details.append(("page", "must be 1 or more" if req.arg("page") is not None else "must be specified"))
        size = _int_arg(req, "size", DEFAULT_PAGE_SIZE)
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            details.append(("size", "must be between 1 and %d" % MAX_PAGE_SIZE))
        status, route = req.arg("status"), req.arg("createRoute")
        if status is not None and status not in STATUSES:
            details.append(("status", "must be one of %s" % ", ".join(STATUSES)))
        if route is not None and route not in ROUTES:
            details.append(("createRoute", "must be one of %s" % ", ".join(ROUTES)))
        external = req.arg("includesExternalPublicGroups")
        if external is not None and external not in ("true", "false"):
            details.append(("includesExternalPublicGroups", "must be true or false"))
        if details:
            return _error("The request has %d error(s)" % len(details), details)
        needle = (req.arg("description") or "").lower()
        with state.lock:
            found = [_public(a) for _, a in sorted(state.audiences.items(), reverse=True)]
        found = [a for a in found if needle in a["description"].lower()
                 and (status is None or a["status"] == status)
                 and (route is None or a["createRoute"] == route)]
        start = (page - 1) * size
        return Reply(200, {"audienceGroups": found[start:start + size], "hasNextPage": start + size < len(found),
                           "totalCount": len(found), "readWriteAudienceGroupTotalCount": len(found),
                           "page": page, "size": size})

    def from_message(kind, req):
        """POST .../click and .../imp: an audience of the users who opened
        (or saw) a broadcast or narrowcast sent in the last 60 days."""
        body, bad = emulator.parse(req)
        if bad:
            return bad
        allowed = ("description", "requestId", "clickUrl") if kind == "CLICK" else ("description", "requestId")
        details = _unknown_fields(body, allowed) + _description_details(body)
        description = body.get("description")
        url = body.get("clickUrl")
        if url is not None and (not isinstance(url, str) or len(url) > 2000):
            details.append(("clickUrl", "The property, clickUrl, in the request body is invalid"))
        request_id = body.get("requestId")
        with state.lock:
            known = {d["request_id"] for d in state.deliveries if d["kind"] in ("broadcast", "narrowcast")}
            known |= set(state.narrowcasts)
        if not isinstance(request_id, str) or request_id not in known:
            details.append(("requestId", "REQUEST_ID_NOT_FOUND" if isinstance(request_id, str) else "must be specified"))
        if details:
            return _body_error(details)
        with state.lock:
            group_id, full = _new_group_id(state)
            if full:
                return full
            audience = _new_audience(state, group_id, description, False, now())
            audience.update(type=kind, requestId=request_id, **({"clickUrl": url} if url else {}))
            audience["jobs"] = []  # LINE: jobs only for audiences of uploaded IDs
            state.audiences[group_id] = audience
            public = _public(audience)
        if kind == "IMP":
            public = {k: public[k] for k in ("audienceGroupId", "type", "description", "created", "requestId")}
        return Reply(202, public)

    def update_description(req):
        group_id = _group_id(req)
        body, bad = emulator.parse(req)
        if bad:
            return bad
        details = _unknown_fields(body, ("description",)) + _description_details(body)
        description = body.get("description")
        if details:
            return _body_error(details)
        with state.lock:
            audience = state.audiences.get(group_id)
            if audience is None:
                return _not_found()
            audience["description"] = description
        return Reply(200, b"", content_type="text/plain")

    def shared_one(req):
        group_id = _group_id(req)
        with state.lock:
            audience = state.shared_audiences.get(group_id)
            if audience is None:
                return _not_found()
            return Reply(200, {"audienceGroup": _public(audience), "jobs": [dict(j) for j in audience["jobs"]],
                               "owner": dict(DEMO_SHARED_OWNER)})

    def shared_list(req):
        page, size = _int_arg(req, "page", None), _int_arg(req, "size", DEFAULT_PAGE_SIZE)
        details = []
        if page is None or page < 1:
            details.append(("page", "must be 1 or more" if req.arg("page") is not None else "must be specified"))
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            details.append(("size", "must be between 1 and %d" % MAX_PAGE_SIZE))
        owned = req.arg("includesOwnedAudienceGroups", "false")
        if owned not in ("true", "false"):
            details.append(("includesOwnedAudienceGroups", "must be true or false"))
        if details:
            return _error("The request has %d error(s)" % len(details), details)
        needle = (req.arg("description") or "").lower()
        with state.lock:
            pool = list(state.shared_audiences.values()) + (list(state.audiences.values()) if owned == "true" else [])
            found = [_public(a) for a in sorted(pool, key=lambda a: -a["audienceGroupId"])]
        found = [a for a in found if needle in a["description"].lower()
                 and req.arg("status") in (None, a["status"]) and req.arg("createRoute") in (None, a["createRoute"])]
        start = (page - 1) * size
        return Reply(200, {"audienceGroups": found[start:start + size], "hasNextPage": start + size < len(found),
                           "totalCount": len(found),
                           "readWriteAudienceGroupTotalCount": sum(a["permission"] == "READ_WRITE" for a in found),
                           "page": page, "size": size})

    def by_file(req, create):
        """POST/PUT .../upload/byFile: multipart/form-data with a text/plain
        ``file`` of IDs, one per line (at most 1,500,000)."""
        form, files = _multipart(req)
        if form is None:
            return _error("The request must be multipart/form-data", [("file", "must be specified")])
        allowed = ("description", "isIfaAudience", "uploadDescription") if create else ("audienceGroupId",
                                                                                       "uploadDescription")
        details = [(k, "The property, %s, in the request body is invalid" % k) for k in form if k not in allowed]
        if set(files) != {"file"}:
            details.append(("file", "must be specified"))
        elif files["file"][0] != "text/plain":
            details.append(("file", "Content-Type must be text/plain"))
        is_ifa = form.get("isIfaAudience", "false")
        if is_ifa not in ("true", "false"):
            details.append(("isIfaAudience", "must be true or false"))
        if create:
            description = form.get("description", "")
            if not description:
                details.append(("description", "must be specified"))
            elif len(description) > MAX_DESCRIPTION:
                details.append(("description", "AUDIENCE_GROUP_NAME_SIZE_OVER"))
        if details:
            return _body_error(details)
        lines = [x.strip() for x in files["file"][1].decode("ascii", "replace").splitlines() if x.strip()]
        if len(lines) > MAX_IDS_PER_FILE:
            return _error("The request body has 1 error(s)", [("file", "UPLOAD_AUDIENCE_GROUP_TOO_MANY_AUDIENCE_IDS")])
        with state.lock:
            if create:
                ifa = is_ifa == "true"
            else:
                gid = form.get("audienceGroupId", "")
                audience = state.audiences.get(int(gid)) if re.fullmatch(r"[1-9][0-9]{0,18}", gid) else None
                if audience is None:
                    return _not_found()
                ifa = audience["isIfaAudience"]
            pattern = IFA if ifa else USER_ID
            bad = [i for i, x in enumerate(lines) if not pattern.match(x)]
            if bad:
                return _error("The request body has 1 error(s)",
                              [("file", "UPLOAD_AUDIENCE_GROUP_INVALID_AUDIENCE_ID_FORMAT")])
            if not create:
                _add_job(state, audience, lines, form.get("uploadDescription"), now())
                return Reply(202, {})
            if len(state.audiences) >= MAX_AUDIENCES:
                return _error("Audience group count max over", [(None, "AUDIENCE_GROUP_COUNT_MAX_OVER")])
            group_id = state.next_audience_id
            state.next_audience_id += 1
            audience = _new_audience(state, group_id, form["description"], ifa, now(), lines,
                                     form.get("uploadDescription"))
            state.audiences[group_id] = audience
            public = _public(audience)
        return Reply(202, {k: public[k] for k in ("audienceGroupId", "type", "description", "created",
                                                  "permission", "expireTimestamp", "isIfaAudience")}
                     | {"createRoute": "MESSAGING_API"})

    return {
        ("POST", "/v2/bot/audienceGroup/upload/byFile"): emulator.authed(lambda req: by_file(req, True)),
        ("PUT", "/v2/bot/audienceGroup/upload/byFile"): emulator.authed(
            _one_operation(state, lambda req: by_file(req, False), _group_of_form)),
        ("POST", "/v2/bot/audienceGroup/click"): emulator.authed(lambda req: from_message("CLICK", req)),
        ("POST", "/v2/bot/audienceGroup/imp"): emulator.authed(lambda req: from_message("IMP", req)),
        ("PUT", "/v2/bot/audienceGroup/{audienceGroupId}/updateDescription"): emulator.authed(update_description),
        ("GET", "/v2/bot/audienceGroup/shared/list"): emulator.authed(shared_list),
        ("GET", "/v2/bot/audienceGroup/shared/{audienceGroupId}"): emulator.authed(shared_one),
        ("POST", "/v2/bot/audienceGroup/upload"): emulator.authed(create),
        ("PUT", "/v2/bot/audienceGroup/upload"): emulator.authed(_one_operation(state, add, _group_of_json)),
        ("GET", "/v2/bot/audienceGroup/list"): emulator.authed(list_),
        ("GET", "/v2/bot/audienceGroup/{audienceGroupId}"): emulator.authed(get_one),
        ("DELETE", "/v2/bot/audienceGroup/{audienceGroupId}"): emulator.authed(delete),
    }


MAX_IDS_PER_FILE = 1500000     # by file: "Max number: 1,500,000"


def _one_operation(state, handler, group_of):
    """``handler`` counted as one of LINE's concurrent operations on its
    audience (reference #limit-on-the-number-of-concurrent-operations) when
    the sandbox enforces limits (``state.operations``, sandbox/ratelimits.py):
    past the limit, LINE's 429 and nothing processed; else the operation
    takes ``operation_seconds`` (LINE processing the upload) while counted."""
    def run(req):
        operations = getattr(state, "operations", None)
        group = group_of(req) if operations is not None else None
        if group is None:
            return handler(req)
        refused = operations.begin(group)
        if refused is not None:
            return Reply(429, refused)
        try:
            operations.process()
            return handler(req)
        finally:
            operations.end(group)
    return run


def _group_of_json(req):
    try:
        body = req.json()
    except (ValueError, RecursionError):
        return None
    group = body.get("audienceGroupId") if isinstance(body, dict) else None
    return group if isinstance(group, int) and not isinstance(group, bool) else None


def _group_of_form(req):
    form, _files = _multipart(req)
    text = (form or {}).get("audienceGroupId", "")
    return int(text) if re.fullmatch(r"[1-9][0-9]{0,18}", text) else None


def _multipart(req):
    """({field: text}, {field: (content type, bytes)}) of a multipart/form-data
    body, parsed by the standard library's email parser; (None, None) when
    the body is not one."""
    from email.parser import BytesParser
    from email.policy import HTTP

    ctype = req.header("content-type") or ""
    if not ctype.lower().startswith("multipart/form-data"):
        return None, None
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n"
                                                  + req.body)
    if not message.is_multipart():
        return None, None
    form, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = (part.get_content_type(), payload)
        else:
            form[name] = payload.decode("utf-8", "replace")
    return form, files


def _group_id(req):
    text = req.params.get("audienceGroupId", "")
    return int(text) if re.fullmatch(r"[1-9][0-9]{0,18}", text) else None


def _int_arg(req, name, default):
    text = req.arg(name)
    if text is None:
        return default
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None
