"""Validate message objects: POST /v2/bot/message/validate/{kind}.

Validation changes nothing at LINE, so it is safe to retry; like reply, it
must not carry a retry key (LINE rejects one with 400)."""
from .base import LineAction


class _Validate(LineAction):
    method = "POST"
    #: checks a message and changes nothing (MCP readOnlyHint)
    read_only = True
    fields = ("messages",)
    idempotent = True


class ValidatePush(_Validate):
    path = "/v2/bot/message/validate/push"


class ValidateReply(_Validate):
    path = "/v2/bot/message/validate/reply"


class ValidateMulticast(_Validate):
    path = "/v2/bot/message/validate/multicast"


class ValidateNarrowcast(_Validate):
    path = "/v2/bot/message/validate/narrowcast"


class ValidateBroadcast(_Validate):
    path = "/v2/bot/message/validate/broadcast"
