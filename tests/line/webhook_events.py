"""One sample event of every type in LINE's webhook spec
(tests/fixtures/line-openapi/webhook.yml) and of every type the official SDK
(linebot.v3.webhooks) knows beyond it, and of every message type."""
U = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
G = "Ca56f94637cc4347f90a25382909b24b9"
R = "Ra8dbf4673c4c812cd491258042226c99"


def base(kind, source=None, **extra):
    event = {"type": kind, "mode": "active", "timestamp": 1462629479859,
             "source": source or {"type": "user", "userId": U},
             "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR", "deliveryContext": {"isRedelivery": False}}
    event.update(extra)
    return event


MESSAGES = {
    "text": {"id": "444573844083572737", "type": "text", "quoteToken": "q3Plxr4AgKd...", "text": "@All Good Morning!!",
             "mention": {"mentionees": [{"index": 0, "length": 4, "type": "all"}]}},
    "image": {"id": "354718705033693859", "type": "image", "quoteToken": "q3P...", "contentProvider": {"type": "line"},
              "imageSet": {"id": "E005D41A", "index": 1, "total": 2}},
    "video": {"id": "325708", "type": "video", "quoteToken": "q3P...", "duration": 60000,
              "contentProvider": {"type": "external", "originalContentUrl": "https://example.com/original.mp4"}},
    "audio": {"id": "325708", "type": "audio", "duration": 60000, "contentProvider": {"type": "line"}},
    "file": {"id": "325708", "type": "file", "fileName": "file.txt", "fileSize": 2138},
    "location": {"id": "325708", "type": "location", "title": "my location", "address": "Tokyo",
                 "latitude": 35.65910807942215, "longitude": 139.70372892916203},
    "sticker": {"id": "1501597916", "type": "sticker", "quoteToken": "q3P...", "packageId": "446",
                "stickerId": "1988", "stickerResourceType": "ANIMATION", "keywords": ["cony", "Happy"]},
}

EVENTS = {
    "message": base("message", replyToken="nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", message=MESSAGES["text"]),
    "unsend": base("unsend", source={"type": "group", "groupId": G, "userId": U}, unsend={"messageId": "325708"}),
    "follow": base("follow", replyToken="85cbe770fa8b4f45bbe077b1d4be4a36", follow={"isUnblocked": False}),
    "unfollow": base("unfollow"),
    "join": base("join", source={"type": "group", "groupId": G}, replyToken="0f3779fba3b349968c5d07db31eab56f"),
    "leave": base("leave", source={"type": "group", "groupId": G}),
    "memberJoined": base("memberJoined", source={"type": "room", "roomId": R}, replyToken="0f3779fba3b3499",
                         joined={"members": [{"type": "user", "userId": U}]}),
    "memberLeft": base("memberLeft", source={"type": "group", "groupId": G},
                       left={"members": [{"type": "user", "userId": U}]}),
    "postback": base("postback", replyToken="b60d432864f44d079f6d8efe86cf404b",
                     postback={"data": "action=buy&itemid=111", "params": {"datetime": "2017-12-25T01:00"}}),
    "videoPlayComplete": base("videoPlayComplete", replyToken="nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                              videoPlayComplete={"trackingId": "track-id"}),
    "beacon": base("beacon", replyToken="nHuyWiB7yP5Zw52FIkcQobQuGDXCTA", beacon={"hwid": "d41d8cd98f", "type": "enter"}),
    "accountLink": base("accountLink", replyToken="b60d432864f44d079f6d8efe86cf404b",
                        link={"result": "ok", "nonce": "xxxxxxxxxxxxxxx"}),
    "membership": base("membership", replyToken="nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                       membership={"type": "joined", "membershipId": 3189}),
    "module": base("module", source=None, module={"type": "attached", "botId": "U111", "scopes": ["message:send"]}),
    "activated": base("activated", chatControl={"expireAt": 1462629479860}),
    "deactivated": base("deactivated"),
    "botSuspended": base("botSuspended"),
    "botResumed": base("botResumed"),
    "delivery": base("delivery", delivery={"data": "4f72b4fd"}),
    # LINE's "edit event" (reference #edit-event; linebot.v3.webhooks.MessageEditedEvent):
    # a user edited a text message in a group; only group chats have it for now
    "messageEdited": base("messageEdited", source={"type": "group", "groupId": G, "userId": U},
                          message={"id": "444573844083572737", "type": "text", "quoteToken": "q3Plxr4AgKd...",
                                   "text": "Good Morning!! (edited)"}),
}
# 'deactivated' carries no chatControl in LINE's spec: only 'activated' does
EVENTS["module"].pop("source")
