"""NXCloud sends: LINE, Viber (SaaS API) and Super Message (SMS/Viber)."""
from line_connector.action import ChunkedAction

from .base import NxAction

SUPER_MESSAGE_CHUNK = 2000


class SendLine(NxAction):
    """POST {url}/saas/line/send (bizType 7, action mt)."""
    path = "/saas/line/send"


class SendViber(NxAction):
    """POST {url}/saas/viber/send (bizType 7, action mt)."""
    path = "/saas/viber/send"


class SendSuperMessage(ChunkedAction, NxAction):
    """POST {super_message_url}/v1/message/mt (bizType 8, action mt).

    Accepts any number of phones; drops duplicates (order kept) and sends
    ceil(n/2000) requests, each result listing the phones it carried."""
    url_field = "super_message_url"
    path = "/v1/message/mt"
    biz_type = "8"
    chunk_size = SUPER_MESSAGE_CHUNK

    def items(self, inputs):
        return inputs["phones"]

    def chunk_request(self, inputs, index, chunk, total):
        rest = {k: v for k, v in inputs.items() if k not in ("appkey", "phones", "max_workers")}
        return self.nx_request(dict({"appkey": inputs["appkey"], "phones": chunk}, **rest),
                               extra=self.chunk_extra(index, chunk, total))
