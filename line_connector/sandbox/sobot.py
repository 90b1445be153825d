"""Emulation of the Sobot LINE API endpoints.

Real token rotation: every get_token issues a new token and the previous
one stops working (900002), as Sobot warns. Checks the sign
md5(appid + create_time + app_key), the token header (900001 when absent),
parameters (999994) and pages a generated data set (page_size <= 100).
"""
import hashlib
import threading
import time
import uuid

from .server import Reply

OK = "000000"


def answer(code, msg="操作成功", **fields):
    body = {"ret_code": code, "ret_msg": msg}
    body.update(fields)
    return Reply(200, body)


class SobotState:
    def __init__(self, appid, app_key, lifetime=86400, tasks=37, records=120):
        self.lock = threading.RLock()
        self.appid, self.app_key = appid, app_key
        self.lifetime = lifetime
        self.token = None
        self.token_expires = 0.0
        self.token_requests = 0
        self.reject_all_tokens = False   # a test switch: every token is refused (900002)
        now_ms = int(time.time() * 1000)
        self.tasks = [{"task_name": "task-%03d" % i, "taskid": uuid.UUID(int=i).hex, "task_source": 1,
                       "timezone": "GMT+08:00", "task_start_time": "2024-07-%02d 20:10:12" % (1 + i % 28),
                       "task_end_time": "2024-07-%02d 20:11:15" % (1 + i % 28), "send_time_type": 1,
                       "estimate_send_num": 10, "send_success_num": 10 - i % 3, "send_error_num": i % 3,
                       "subjectid": "subject-%d" % (i % 4), "sender": "2005652357", "_start_ms": now_ms - i * 3600000}
                      for i in range(tasks)]
        self.records = [{"task_name": "task-%03d" % (i % tasks), "send_time": now_ms - i * 60000,
                         "sender": "2005652357", "timezone": "GMT+08:00", "messageid": str(515320261680824337 + i),
                         "error_code": "999999" if i % 10 == 9 else "000000", "send_agentid": "agent-%d" % (i % 3),
                         "taskid": uuid.UUID(int=i % tasks).hex, "recipient_id": "U%032x" % i,
                         "status_update_time": now_ms - i * 60000, "subjectid": "subject-%d" % (i % 4),
                         "_status": "9" if i % 10 == 9 else str(i % 3)} for i in range(records)]


class SobotEmulator:
    def __init__(self, state):
        self.state = state

    def routes(self):
        return {
            ("GET", "/api/get_token"): self.get_token,
            ("GET", "/chat-line/api/line/get_media_content"): self.authed(self.media),
            ("POST", "/chat-set/api/line/query_task_list"): self.authed(self.task_list),
            ("POST", "/chat-set/api/line/send_record_list"): self.authed(self.send_records),
        }

    def get_token(self, req):
        appid, create_time, sign = req.arg("appid"), req.arg("create_time"), req.arg("sign")
        with self.state.lock:
            self.state.token_requests += 1
        if not appid or not create_time or not sign or not (create_time.isdigit() and len(create_time) == 10):
            return answer("999994", "参数异常,请检查")
        expected = hashlib.md5((appid + create_time + self.state.app_key).encode("utf-8")).hexdigest()
        if appid != self.state.appid or sign != expected:
            return answer("999994", "参数异常,请检查 (sign)")
        with self.state.lock:  # a new token; the old one stops working
            self.state.token = uuid.uuid4().hex
            self.state.token_expires = time.time() + self.state.lifetime
            return answer(OK, item={"token": self.state.token, "expires_in": str(self.state.lifetime)})

    def authed(self, handler):
        def wrapped(req):
            token = req.header("token")
            if not token:
                return answer("900001", "token 为空")
            with self.state.lock:
                valid = (token == self.state.token and time.time() < self.state.token_expires
                         and not self.state.reject_all_tokens)
            if not valid:
                return answer("900002", "token 已失效,请重新获取")
            return handler(req)
        return wrapped

    def media(self, req):
        if req.arg("appid") != self.state.appid or not req.arg("messageid"):
            return answer("999994", "参数异常,请检查")
        return answer(OK, item="https://sg.sobot.com/chatres/sandbox/msg/%s.png" % req.arg("messageid"))

    @staticmethod
    def _paging(body):
        page_no, page_size = body.get("page_no", 1), body.get("page_size", 15)
        if not isinstance(page_no, int) or not isinstance(page_size, int) or page_no < 1 \
                or not 1 <= page_size <= 100:
            return None
        return page_no, page_size

    def _page(self, req, rows, filters):
        try:
            body = req.json()
        except ValueError:
            return answer("999994", "参数异常,请检查")
        paging = self._paging(body) if isinstance(body, dict) else None
        if paging is None:
            return answer("999994", "参数异常,请检查")
        page_no, page_size = paging
        for key, test in filters.items():
            if key in body:
                rows = [r for r in rows if test(r, body[key])]
        total = len(rows)
        start = (page_no - 1) * page_size
        items = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows[start:start + page_size]]
        return answer(OK, items=items, page_no=page_no, page_size=page_size, total_count=total,
                      page_count=(total + page_size - 1) // page_size)

    def task_list(self, req):
        return self._page(req, self.state.tasks, {
            "task_name": lambda r, v: v in r["task_name"], "sender": lambda r, v: r["sender"] == v,
            "subjectid": lambda r, v: r["subjectid"] == v,
            "task_start_time": lambda r, v: r["_start_ms"] >= v, "task_end_time": lambda r, v: r["_start_ms"] <= v})

    def send_records(self, req):
        return self._page(req, self.state.records, {
            "message_status": lambda r, v: r["_status"] == v, "messageid": lambda r, v: r["messageid"] == v,
            "taskid": lambda r, v: r["taskid"] == v, "task_name": lambda r, v: v in r["task_name"],
            "send_agentid": lambda r, v: r["send_agentid"] == v, "sender": lambda r, v: r["sender"] == v,
            "recipient": lambda r, v: r["recipient_id"] == v, "subjectid": lambda r, v: r["subjectid"] == v,
            "send_start_time": lambda r, v: r["send_time"] >= v, "send_end_time": lambda r, v: r["send_time"] <= v})
