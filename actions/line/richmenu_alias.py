"""Rich menu reads, aliases and batch control
(developers.line.biz/en/reference/messaging-api/: #get-rich-menu,
#get-default-rich-menu-id, #get-rich-menu-id-of-user, #download-rich-menu-image,
#create-rich-menu-alias, #get-rich-menu-alias-by-id, #update-rich-menu-alias,
#delete-rich-menu-alias, #get-rich-menu-alias-list,
#batch-control-rich-menus-of-users, #validate-batch-control-rich-menus-request,
#get-batch-control-rich-menus-progress-status).

Retry rules: reads and validation are resent; updating an alias sets the same
value again (resent); deleting one is resent like a delete, a 400 after a
lost answer most likely meaning the first attempt deleted it. Creating an
alias is sent once: a repeat after a lost answer is refused (the ID is
taken). A batch is sent once: LINE runs one at a time per channel, and its
outcome after a lost answer is read with line_get_rich_menu_batch_progress.
"""
from .base import LineAction
from .content import GetMessageContent


class GetRichMenu(LineAction):
    """GET /v2/bot/richmenu/{richMenuId}: the rich menu object."""
    path = "/v2/bot/richmenu/{richMenuId}"


class GetDefaultRichMenu(LineAction):
    """GET /v2/bot/user/all/richmenu: the default rich menu's ID (404: none)."""
    path = "/v2/bot/user/all/richmenu"


class GetUserRichMenu(LineAction):
    """GET /v2/bot/user/{userId}/richmenu: the rich menu linked to a user."""
    path = "/v2/bot/user/{userId}/richmenu"


class DownloadRichMenuImage(GetMessageContent):
    """GET {data_url}/v2/bot/richmenu/{richMenuId}/content: streamed to
    ``save_to`` or returned base64-encoded, as message content is."""
    path = "/v2/bot/richmenu/{richMenuId}/content"


class CreateRichMenuAlias(LineAction):
    method = "POST"
    path = "/v2/bot/richmenu/alias"
    fields = ("richMenuAliasId", "richMenuId")
    gone_on_repeat = (400, "the alias ID is already in use", "created it")


class GetRichMenuAlias(LineAction):
    path = "/v2/bot/richmenu/alias/{richMenuAliasId}"


class UpdateRichMenuAlias(LineAction):
    method = "POST"
    path = "/v2/bot/richmenu/alias/{richMenuAliasId}"
    fields = ("richMenuId",)
    idempotent = True
    destructive = True  # users tapping the alias switch to another menu


class DeleteRichMenuAlias(LineAction):
    method = "DELETE"
    path = "/v2/bot/richmenu/alias/{richMenuAliasId}"
    idempotent = True
    destructive = True
    gone_on_repeat = (400, "there is no such alias (any more)", "deleted it")


class ListRichMenuAliases(LineAction):
    path = "/v2/bot/richmenu/alias/list"


class RichMenuBatch(LineAction):
    """POST /v2/bot/richmenu/batch: link, unlink or unlink all, for every
    user at once; 202, then poll the progress with the x-line-request-id."""
    method = "POST"
    path = "/v2/bot/richmenu/batch"
    fields = ("operations", "resumeRequestKey")
    destructive = True

    def judge(self, request, result):
        ok = super().judge(request, result)
        if result.get("delivery") == "unknown":
            result["note"] = ("outcome unknown: the batch may have reached LINE; it was not resent (LINE runs one "
                              "batch at a time per channel). Check line_get_rich_menu_batch_progress with the "
                              "request ID of the earlier attempt, or send it again with resumeRequestKey")
        return ok


class ValidateRichMenuBatch(LineAction):
    method = "POST"
    path = "/v2/bot/richmenu/validate/batch"
    fields = ("operations", "resumeRequestKey")
    idempotent = True
    read_only = True


class GetRichMenuBatchProgress(LineAction):
    path = "/v2/bot/richmenu/progress/batch"
    fields = ("requestId",)
