"""Emulation of the webhook endpoint settings, rich menu aliases and rich
menu batch control (developers.line.biz/en/reference/messaging-api/:
#get-webhook-endpoint-information, #set-webhook-endpoint-url,
#test-webhook-endpoint, #create-rich-menu-alias, #get-rich-menu-alias-by-id,
#update-rich-menu-alias, #delete-rich-menu-alias, #get-rich-menu-alias-list,
#batch-control-rich-menus-of-users, #validate-batch-control-rich-menus-request,
#get-batch-control-rich-menus-progress-status).

Request bodies are judged by the pack's own input schemas (as line.py does
for messages), so a body any client sends is refused exactly when the pack
would refuse it, with LINE's 400 and ``details[].property``.

The webhook test does not reach the URL (the sandbox makes no outbound
request): it answers what LINE answers for a receiver that returned 200.

Demo data: the webhook URL ``DEMO_WEBHOOK_URL`` (active); the alias
``DEMO_ALIAS_ID`` pointing at the demo rich menu; a batch that already
succeeded, request ID ``DEMO_BATCH_REQUEST_ID``.
"""
import datetime
import re

from .server import Reply

DEMO_WEBHOOK_URL = "https://example.com/line/webhook"
DEMO_ALIAS_ID = "richmenu-alias-a"
DEMO_BATCH_REQUEST_ID = "d5a3c1e2-0000-4000-8000-0000000000b1"
MAX_ALIASES = 1000  # #create-rich-menu-alias: up to 1000 aliases per channel
ALIAS_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


def install(state):
    from .line_richmenu import DEMO_RICH_MENU_ID

    state.webhook = {"endpoint": DEMO_WEBHOOK_URL, "active": True}
    state.webhook_tests = []          # endpoints tested, in order
    state.richmenu_aliases = {DEMO_ALIAS_ID: DEMO_RICH_MENU_ID}
    state.richmenu_batches = {DEMO_BATCH_REQUEST_ID: {"polls": 2, "accepted": "2026-01-05T00:00:00.000Z",
                                                      "completed": "2026-01-05T00:00:01.000Z"}}


def _utc(state):
    moment = datetime.datetime.fromtimestamp(state.clock(), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def routes(emulator):
    from .line import body_error, checked_body, error, new_request_id

    state = emulator.state
    a = emulator.authed

    def body_by(schema, req):
        return checked_body(emulator, schema, req)

    # ------------------------------------------------------------ webhook endpoint
    def get_webhook(req):
        with state.lock:
            return Reply(200, dict(state.webhook))

    def set_webhook(req):
        body, bad = body_by("line/set_webhook_endpoint.input.json", req)
        if bad:
            return bad
        with state.lock:
            state.webhook["endpoint"] = body["endpoint"]
        return Reply(200, {})

    def test_webhook(req):
        body, bad = body_by("line/test_webhook_endpoint.input.json", req)
        if bad:
            return bad
        with state.lock:
            endpoint = body.get("endpoint") or state.webhook.get("endpoint")
            if endpoint:
                state.webhook_tests.append(endpoint)
        if not endpoint:
            return error(400, "The webhook URL is not set")
        return Reply(200, {"success": True, "timestamp": _utc(state), "statusCode": 200, "reason": "OK",
                           "detail": "200"})

    # ------------------------------------------------------------ aliases
    def menu_exists(menu_id):
        with state.lock:
            entry = state.richmenus.get(menu_id)
        if entry is None:
            return error(400, "richmenu not found")
        if entry["image"] is None:
            return error(400, "must upload richmenu image before applying it to user")
        return None

    def create_alias(req):
        body, bad = body_by("line/rich_menu_alias.input.json", req)
        if bad:
            return bad
        bad = menu_exists(body["richMenuId"])
        if bad:
            return bad
        with state.lock:
            if body["richMenuAliasId"] in state.richmenu_aliases:
                return error(400, "conflict richmenu alias id")
            if len(state.richmenu_aliases) >= MAX_ALIASES:
                return error(400, "the number of rich menu aliases has reached the limit (%d)" % MAX_ALIASES)
            state.richmenu_aliases[body["richMenuAliasId"]] = body["richMenuId"]
        return Reply(200, {})

    def alias_or_error(alias_id):
        if not ALIAS_RE.match(alias_id):
            return None, error(400, "invalid richMenuAliasId")
        with state.lock:
            target = state.richmenu_aliases.get(alias_id)
        return (target, None) if target else (None, error(404, "richmenu alias not found"))

    def get_alias(req):
        alias_id = req.params["richMenuAliasId"]
        target, bad = alias_or_error(alias_id)
        return bad or Reply(200, {"richMenuAliasId": alias_id, "richMenuId": target})

    def update_alias(req):
        alias_id = req.params["richMenuAliasId"]
        body, bad = emulator.parse(req)
        if bad:
            return bad
        unknown = sorted(set(body) - {"richMenuId"})
        if unknown or not isinstance(body.get("richMenuId"), str):
            return body_error([(k, "The property, %s, in the request body is invalid" % k) for k in unknown]
                              or [("richMenuId", "must be specified")])
        _, bad = alias_or_error(alias_id)
        if bad:
            return error(400, "richmenu alias not found") if bad.status == 404 else bad
        bad = menu_exists(body["richMenuId"])
        if bad:
            return bad
        with state.lock:
            state.richmenu_aliases[alias_id] = body["richMenuId"]
        return Reply(200, {})

    def delete_alias(req):
        alias_id = req.params["richMenuAliasId"]
        with state.lock:
            if state.richmenu_aliases.pop(alias_id, None) is None:
                return error(400, "richmenu alias not found")
        return Reply(200, {})

    def list_aliases(req):
        with state.lock:
            return Reply(200, {"aliases": [{"richMenuAliasId": k, "richMenuId": v}
                                           for k, v in state.richmenu_aliases.items()]})

    # ------------------------------------------------------------ batch
    def check_batch(req):
        body, bad = body_by("line/rich_menu_batch.input.json", req)
        if bad:
            return None, bad
        for i, op in enumerate(body["operations"]):
            for key in ("from", "to"):
                if key in op:
                    with state.lock:
                        known = op[key] in state.richmenus
                    if not known:
                        return None, body_error([("operations[%d].%s" % (i, key), "richmenu not found")])
        return body, None

    def run_batch(body):
        with state.lock:
            links = dict(state.demo_linked, **state.user_richmenus)
            for op in body["operations"]:
                if op["type"] == "link":
                    links = {u: (op["to"] if m == op["from"] else m) for u, m in links.items()}
                elif op["type"] == "unlink":
                    links = {u: m for u, m in links.items() if m != op["from"]}
                else:
                    links = {}
            state.demo_linked = {}
            state.user_richmenus.clear()
            state.user_richmenus.update(links)

    def batch(req):
        body, bad = check_batch(req)
        if bad:
            return bad
        run_batch(body)
        request_id = new_request_id()
        with state.lock:
            state.richmenu_batches[request_id] = {"polls": 0, "accepted": _utc(state), "completed": None}
        return Reply(202, {}, {"X-Line-Request-Id": request_id})

    def validate_batch(req):
        _, bad = check_batch(req)
        return bad or Reply(200, {})

    def progress(req):
        request_id = req.arg("requestId")
        if not request_id:
            return body_error([("requestId", "must be specified")])
        with state.lock:
            job = state.richmenu_batches.get(request_id)
            if job is None:
                return error(404, "Not found")
            job["polls"] += 1  # ongoing on the first poll, then succeeded
            if job["polls"] > 1 and job["completed"] is None:
                job["completed"] = _utc(state)
            answer = {"phase": "ongoing" if job["polls"] <= 1 else "succeeded", "acceptedTime": job["accepted"]}
            if job["completed"] is not None and job["polls"] > 1:
                answer["completedTime"] = job["completed"]
        return Reply(200, answer)

    return {
        ("GET", "/v2/bot/channel/webhook/endpoint"): a(get_webhook),
        ("PUT", "/v2/bot/channel/webhook/endpoint"): a(set_webhook),
        ("POST", "/v2/bot/channel/webhook/test"): a(test_webhook),
        ("POST", "/v2/bot/richmenu/alias"): a(create_alias),
        ("GET", "/v2/bot/richmenu/alias/list"): a(list_aliases),
        ("GET", "/v2/bot/richmenu/alias/{richMenuAliasId}"): a(get_alias),
        ("POST", "/v2/bot/richmenu/alias/{richMenuAliasId}"): a(update_alias),
        ("DELETE", "/v2/bot/richmenu/alias/{richMenuAliasId}"): a(delete_alias),
        ("POST", "/v2/bot/richmenu/batch"): a(batch),
        ("POST", "/v2/bot/richmenu/validate/batch"): a(validate_batch),
        ("GET", "/v2/bot/richmenu/progress/batch"): a(progress),
    }
