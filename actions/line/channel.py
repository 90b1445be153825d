"""The channel's webhook endpoint: read it, set it, test it.
(developers.line.biz/en/reference/messaging-api/: #get-webhook-endpoint-information,
#set-webhook-endpoint-url, #test-webhook-endpoint.) The first thing an
operator automates when rotating a deployment.

Setting is a PUT of the whole value: a repeat sets the same URL again, so it
is resent like a read. A test makes LINE send one test webhook to the URL: a
repeat sends another, which a receiver must take anyway, so it is resent too.
"""
from .base import LineAction


class GetWebhookEndpoint(LineAction):
    """GET /v2/bot/channel/webhook/endpoint: the URL and whether it is used."""
    path = "/v2/bot/channel/webhook/endpoint"


class SetWebhookEndpoint(LineAction):
    """PUT /v2/bot/channel/webhook/endpoint {endpoint}."""
    method = "PUT"
    path = "/v2/bot/channel/webhook/endpoint"
    fields = ("endpoint",)
    idempotent = True
    destructive = True  # replaces where every event goes


class TestWebhookEndpoint(LineAction):
    """POST /v2/bot/channel/webhook/test {endpoint?}: LINE sends a test
    webhook to the given URL (or the one set) and reports the answer."""
    method = "POST"
    path = "/v2/bot/channel/webhook/test"
    fields = ("endpoint",)
    idempotent = True

    def build(self, inputs):
        # LINE's reference shows a JSON body even without an endpoint: {}
        return [self.line_request(body={k: inputs[k] for k in self.fields if k in inputs})]
