"""Sobot LINE API actions: token, media content, task list, send records."""
import re
import time

from line_connector.errors import AuthFailed

from .base import SobotAction


class GetToken(SobotAction):
    """The shared Sobot token and its expiry.

    Returns the cached token when one is valid (fetching would invalidate the
    token every other caller is using); ``force_refresh`` fetches a new one.
    The token is masked unless ``reveal_token`` is true."""
    method = "GET"
    path = "/api/get_token"
    #: force_refresh replaces the token every other caller uses (MCP hints)
    read_only = False
    destructive = True

    def build(self, inputs):
        return [self.auth.token_request()]

    def execute(self, inputs):
        try:
            token, expires_at, fetched = self.auth.current(self.client, force=inputs.get("force_refresh", False))
        except AuthFailed as exc:
            result = dict(exc.result, ok=False, note=str(exc))
            self.judge(None, result)
            return {"token": None, "requests": [result]}, False
        output = {
            "token": str(token) if inputs.get("reveal_token") else "***",
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at)),
            "expires_in": max(0, int(expires_at - self.auth.clock())),
            "cached": not fetched,
            "requests": [dict(r, ok=True) for r in self.auth.fetch_results],
        }
        return output, True

    def reveal(self, output, inputs):
        return ("token",) if inputs.get("reveal_token") else ()


URL_RE = re.compile(r"https?://[^\s\"'{}]+")


class GetMediaContent(SobotAction):
    """GET /chat-line/api/line/get_media_content?appid&messageid; the result
    adds ``media_url``, read from ``item`` (a URL string; Sobot's example
    shows it loosely, so the raw text is searched as a fallback)."""
    method = "GET"
    path = "/chat-line/api/line/get_media_content"

    def build(self, inputs):
        return [self.sobot_request(params={"appid": self.asset["appid"], "messageid": inputs["messageid"]})]

    def judge(self, request, result):
        body = result["json_body"]
        item = body.get("item") if isinstance(body, dict) else None
        if isinstance(item, str):
            result["media_url"] = item
        elif isinstance(item, (dict, list)):
            found = URL_RE.search(str(item))
            if found:
                result["media_url"] = found.group(0)
        elif body is None and result.get("raw_body"):
            found = URL_RE.search(result["raw_body"])
            if found and '"000000"' in result["raw_body"]:
                result["media_url"] = found.group(0)
                return True
        return super().judge(request, result)


class _PagedQuery(SobotAction):
    """POST a query; with ``all_pages`` fetch page after page (at most
    ``max_pages``) and merge every page's items into the last result's
    ``all_items``."""
    local_inputs = ("all_pages", "max_pages")

    def build(self, inputs):
        return [self.sobot_request(body=self.vendor_inputs(inputs))]

    def execute(self, inputs):
        if not inputs.get("all_pages"):
            return super().execute(inputs)
        body = self.vendor_inputs(inputs)
        page = body.get("page_no", 1)
        limit = inputs.get("max_pages", 20)
        results, items = [], []
        for _ in range(limit):
            result = self.send_one(self.sobot_request(body=dict(body, page_no=page)))
            results.append(result)
            payload = result["json_body"] if isinstance(result["json_body"], dict) else {}
            if not result["ok"]:
                return results, False
            got = payload.get("items") or []
            items.extend(got)
            page_count = payload.get("page_count")
            if not got or not isinstance(page_count, int) or page >= page_count:
                break
            page += 1
        last = results[-1]
        last["all_items"] = items
        last["pages_fetched"] = len(results)
        payload = last["json_body"] if isinstance(last["json_body"], dict) else {}
        if isinstance(payload.get("page_count"), int) and page < payload["page_count"]:
            last["note"] = "stopped after max_pages=%d of %d pages" % (limit, payload["page_count"])
        return results, True


class QueryTaskList(_PagedQuery):
    """POST /chat-set/api/line/query_task_list."""
    path = "/chat-set/api/line/query_task_list"


class QuerySendRecords(_PagedQuery):
    """POST /chat-set/api/line/send_record_list."""
    path = "/chat-set/api/line/send_record_list"
