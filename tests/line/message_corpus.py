"""A corpus of LINE message objects, each labelled valid or invalid by LINE's
Messaging API reference (developers.line.biz), not by our schema.

``CASES`` is the labelled corpus: a list of dicts
``{"id", "messages", "valid", "rule", "source"}`` where ``messages`` is the
``messages`` array of a push body, ``rule`` names the reference rule the case
exercises and ``source`` is the reference page (with its anchor) the label
comes from. Limits are tested on both sides: at the limit (valid) and one past
it (invalid), counted in the unit LINE counts that property in (UTF-16 code
units by default, grapheme clusters for the properties listed on "Character
counting in a text").

``VALID``, ``INVALID_BOTH`` and ``INVALID_OURS`` are the older split by who
catches a case (LINE's OpenAPI and our schema, or only our schema because the
rule is in LINE's reference but not in the OpenAPI); they are part of
``CASES`` too.
"""

IMG = "https://example.com/a.jpg"
U = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
POSTBACK = {"type": "postback", "label": "Buy", "data": "action=buy&itemid=111", "displayText": "Buy"}
MSG_ACTION = {"type": "message", "label": "Yes", "text": "yes"}
URI = {"type": "uri", "label": "Open", "uri": "https://example.com/page"}

VALID = {
    "text": {"type": "text", "text": "Hello, world"},
    "text_emoji": {"type": "text", "text": "$ LINE emoji $",
                   "emojis": [{"index": 0, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"},
                              {"index": 13, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "002"}]},
    "text_5000_utf16": {"type": "text", "text": "\U0001F600" * 2500},
    "text_quote": {"type": "text", "text": "quoted", "quoteToken": "q3Plxr4AgKd..."},
    "textV2": {"type": "textV2", "text": "Welcome, {user1}! {laugh}",
               "substitution": {"user1": {"type": "mention", "mentionee": {"type": "user", "userId": U}},
                                "laugh": {"type": "emoji", "productId": "5a8555cfe6256cc92ea23c2a", "emojiId": "002"}}},
    "textV2_all": {"type": "textV2", "text": "{everyone} hi",
                   "substitution": {"everyone": {"type": "mention", "mentionee": {"type": "all"}}}},
    "sticker": {"type": "sticker", "packageId": "446", "stickerId": "1988"},
    "image": {"type": "image", "originalContentUrl": IMG, "previewImageUrl": IMG},
    "video": {"type": "video", "originalContentUrl": "https://example.com/v.mp4", "previewImageUrl": IMG,
              "trackingId": "track-id"},
    "audio": {"type": "audio", "originalContentUrl": "https://example.com/a.m4a", "duration": 60000},
    "location": {"type": "location", "title": "my location", "address": "1-3 Kioicho, Chiyoda-ku, Tokyo",
                 "latitude": 35.67966, "longitude": 139.73669},
    "imagemap": {"type": "imagemap", "baseUrl": "https://example.com/bot/images/rm001", "altText": "imagemap",
                 "baseSize": {"width": 1040, "height": 1040},
                 "video": {"originalContentUrl": "https://example.com/video.mp4", "previewImageUrl": IMG,
                           "area": {"x": 0, "y": 0, "width": 1040, "height": 585},
                           "externalLink": {"linkUri": "https://example.com/see_more.html", "label": "See More"}},
                 "actions": [{"type": "uri", "linkUri": "https://example.com/", "area": {"x": 0, "y": 586, "width": 520, "height": 454}},
                             {"type": "message", "text": "Hello", "area": {"x": 520, "y": 586, "width": 520, "height": 454}},
                             {"type": "clipboard", "clipboardText": "copied", "area": {"x": 0, "y": 0, "width": 10, "height": 10}}]},
    "buttons": {"type": "template", "altText": "This is a buttons template",
                "template": {"type": "buttons", "thumbnailImageUrl": IMG, "imageAspectRatio": "rectangle",
                             "imageSize": "cover", "imageBackgroundColor": "#FFFFFF", "title": "Menu",
                             "text": "Please select", "defaultAction": URI,
                             "actions": [POSTBACK, MSG_ACTION, URI,
                                         {"type": "datetimepicker", "label": "When", "data": "d", "mode": "datetime"}]}},
    "confirm": {"type": "template", "altText": "this is a confirm template",
                "template": {"type": "confirm", "text": "Are you sure?", "actions": [MSG_ACTION, {"type": "message", "label": "No", "text": "no"}]}},
    "carousel": {"type": "template", "altText": "this is a carousel template",
                 "template": {"type": "carousel", "imageAspectRatio": "square", "imageSize": "contain",
                              "columns": [{"thumbnailImageUrl": IMG, "title": "this is menu", "text": "description",
                                           "actions": [POSTBACK, URI]},
                                          {"thumbnailImageUrl": IMG, "title": "second", "text": "description",
                                           "actions": [POSTBACK, URI]}]}},
    "image_carousel": {"type": "template", "altText": "this is an image carousel template",
                       "template": {"type": "image_carousel", "columns": [{"imageUrl": IMG, "action": POSTBACK},
                                                                          {"imageUrl": IMG, "action": URI}]}},
    "flex_bubble": {"type": "flex", "altText": "this is a flex message",
                    "contents": {"type": "bubble", "size": "mega",
                                 "hero": {"type": "image", "url": IMG, "size": "full", "aspectRatio": "20:13"},
                                 "body": {"type": "box", "layout": "vertical", "spacing": "md", "contents": [
                                     {"type": "text", "text": "Alert", "weight": "bold", "size": "xl"},
                                     {"type": "separator"},
                                     {"type": "box", "layout": "baseline", "contents": [
                                         {"type": "icon", "url": IMG},
                                         {"type": "text", "text": "db-1", "flex": 0}]},
                                     {"type": "text", "contents": [{"type": "span", "text": "disk "},
                                                                   {"type": "span", "text": "98%", "weight": "bold"}]},
                                     {"type": "filler"}]},
                                 "footer": {"type": "box", "layout": "vertical", "contents": [
                                     {"type": "button", "style": "primary", "action": URI}]}}},
    "flex_carousel": {"type": "flex", "altText": "carousel",
                      "contents": {"type": "carousel", "contents": [
                          {"type": "bubble", "body": {"type": "box", "layout": "vertical",
                                                      "contents": [{"type": "text", "text": "one"}]}},
                          {"type": "bubble", "body": {"type": "box", "layout": "vertical",
                                                      "contents": [{"type": "text", "text": "two"}]}}]}},
    "coupon": {"type": "coupon", "couponId": "01JYNW8JMQVFBNHM5WA6N5P6N4"},
    "quick_reply_and_sender": {
        "type": "text", "text": "Select your favorite food category or send me your location!",
        "sender": {"name": "Cony", "iconUrl": "https://example.com/cony.png"},
        "quickReply": {"items": [
            {"type": "action", "imageUrl": "https://example.com/sushi.png",
             "action": {"type": "message", "label": "Sushi", "text": "Sushi"}},
            {"type": "action", "action": {"type": "location", "label": "Send location"}},
            {"type": "action", "action": {"type": "camera", "label": "Camera"}},
            {"type": "action", "action": {"type": "cameraRoll", "label": "Camera roll"}},
            {"type": "action", "action": {"type": "clipboard", "label": "Copy", "clipboardText": "3B48740B"}},
            {"type": "action", "action": {"type": "postback", "label": "Buy", "data": "buy", "inputOption": "openKeyboard",
                                          "fillInText": "qty:"}}]}},
}

# Invalid for LINE's OpenAPI and for our schema alike.
INVALID_BOTH = {
    "text_missing_text": {"type": "text"},
    "text_wrong_type": {"type": "text", "text": 42},
    "image_missing_preview": {"type": "image", "originalContentUrl": IMG},
    "audio_missing_duration": {"type": "audio", "originalContentUrl": "https://example.com/a.m4a"},
    "location_missing_address": {"type": "location", "title": "t", "latitude": 1.0, "longitude": 2.0},
    "sticker_missing_sticker": {"type": "sticker", "packageId": "446"},
    "template_missing_template": {"type": "template", "altText": "x"},
    "flex_missing_contents": {"type": "flex", "altText": "x"},
    "quick_reply_14_items": {"type": "text", "text": "x", "quickReply": {"items": [
        {"type": "action", "action": {"type": "message", "label": "a", "text": "a"}}] * 14}},
    "postback_data_too_long": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "postback", "label": "a", "data": "d" * 301}]}},
    "clipboard_too_long": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "clipboard", "label": "a", "clipboardText": "c" * 1001}]}},
    "sender_name_too_long": {"type": "text", "text": "x", "sender": {"name": "n" * 21}},
    "imagemap_missing_area": {"type": "imagemap", "baseUrl": "https://example.com/i", "altText": "a",
                              "baseSize": {"width": 1040, "height": 1040}, "actions": [{"type": "message", "text": "t"}]},
    "buttons_missing_actions": {"type": "template", "altText": "x", "template": {"type": "buttons", "text": "t"}},
    "datetimepicker_bad_mode": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "datetimepicker", "label": "a", "data": "d", "mode": "week"}]}},
}

# Invalid by LINE's reference (limits the OpenAPI file does not encode);
# our schema must catch them before LINE answers 400.
INVALID_OURS = {
    "unknown_type": {"type": "txt", "text": "x"},
    "text_empty": {"type": "text", "text": ""},
    "text_5001_utf16": {"type": "text", "text": "\U0001F600" * 2500 + "a"},
    "text_typo_field": {"type": "text", "text": "x", "txet": "y"},
    "image_http": {"type": "image", "originalContentUrl": "http://example.com/a.jpg", "previewImageUrl": IMG},
    "image_url_2001": {"type": "image", "originalContentUrl": "https://e.com/" + "a" * 1990, "previewImageUrl": IMG},
    "alt_text_1501": {"type": "template", "altText": "a" * 1501, "template": {
        "type": "confirm", "text": "q", "actions": [MSG_ACTION, MSG_ACTION]}},
    "confirm_one_action": {"type": "template", "altText": "x", "template": {
        "type": "confirm", "text": "q", "actions": [MSG_ACTION]}},
    "buttons_5_actions": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [MSG_ACTION] * 5}},
    "buttons_title_text_61": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "title": "T", "text": "t" * 61, "actions": [MSG_ACTION]}},
    "carousel_11_columns": {"type": "template", "altText": "x", "template": {
        "type": "carousel", "columns": [{"text": "t", "actions": [MSG_ACTION]}] * 11}},
    "action_label_21": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "message", "label": "l" * 21, "text": "a"}]}},
    "postback_text_and_display_text": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "postback", "label": "a", "data": "d",
                                                     "text": "x", "displayText": "y"}]}},
    "uri_action_ftp": {"type": "template", "altText": "x", "template": {
        "type": "buttons", "text": "t", "actions": [{"type": "uri", "label": "a", "uri": "ftp://example.com"}]}},
    "emojis_21": {"type": "text", "text": "$" * 21, "emojis": [
        {"index": i, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"} for i in range(21)]},
    "imagemap_width_not_1040": {"type": "imagemap", "baseUrl": "https://example.com/i", "altText": "a",
                                "baseSize": {"width": 700, "height": 700}, "actions": []},
    "flex_carousel_13": {"type": "flex", "altText": "c", "contents": {"type": "carousel", "contents": [
        {"type": "bubble"}] * 13}},
    "flex_box_without_layout": {"type": "flex", "altText": "c", "contents": {"type": "bubble", "body": {
        "type": "box", "contents": []}}},
    "flex_image_http": {"type": "flex", "altText": "c", "contents": {"type": "bubble", "hero": {
        "type": "image", "url": "http://example.com/a.png"}}},
    "location_latitude_91": {"type": "location", "title": "t", "address": "a", "latitude": 91, "longitude": 0},
    "quick_reply_uri_unknown_action": {"type": "text", "text": "x", "quickReply": {"items": [
        {"type": "action", "action": {"type": "teleport", "label": "a"}}]}},
}


# ------------------------------------------------------------ labelled corpus

REF = "https://developers.line.biz/en/reference/messaging-api/"
COUNTING = "https://developers.line.biz/en/docs/messaging-api/text-character-count/"
QUICK_REPLY_DOC = "https://developers.line.biz/en/docs/messaging-api/using-quick-reply/#action"

# one grapheme cluster each, but several code points / UTF-16 units
FAMILY = "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466"  # 7 code points, 11 UTF-16 units
FLAG = "\U0001F1EF\U0001F1F5"  # regional indicators J+P: 2 code points, 4 UTF-16 units
ACCENTED = "e\u0301"  # e + combining acute: 2 code points
SMILE = "\U0001F600"  # 1 code point, 2 UTF-16 units


def _anchor(anchor):
    return REF + "#" + anchor


# where each older case's label comes from
_OLD_SOURCES = {
    "text": "text-message", "text_emoji": "text-message", "text_5000_utf16": "text-message",
    "text_quote": "text-message", "textV2": "text-message-v2", "textV2_all": "text-message-v2",
    "sticker": "sticker-message", "image": "image-message", "video": "video-message",
    "audio": "audio-message", "location": "location-message", "imagemap": "imagemap-message",
    "buttons": "buttons", "confirm": "confirm", "carousel": "carousel", "image_carousel": "image-carousel",
    "flex_bubble": "flex-message", "flex_carousel": "f-carousel", "coupon": "coupon-message",
    "quick_reply_and_sender": "quick-reply",
    "text_missing_text": "text-message", "text_wrong_type": "text-message",
    "image_missing_preview": "image-message", "audio_missing_duration": "audio-message",
    "location_missing_address": "location-message", "sticker_missing_sticker": "sticker-message",
    "template_missing_template": "template-messages", "flex_missing_contents": "flex-message",
    "quick_reply_14_items": "quick-reply", "postback_data_too_long": "postback-action",
    "clipboard_too_long": "clipboard-action", "sender_name_too_long": "icon-nickname-switch",
    "imagemap_missing_area": "imagemap-action-objects", "buttons_missing_actions": "buttons",
    "datetimepicker_bad_mode": "datetime-picker-action",
    "unknown_type": "message-objects", "text_empty": "text-message", "text_5001_utf16": "text-message",
    "text_typo_field": "text-message", "image_http": "image-message", "image_url_2001": "image-message",
    "alt_text_1501": "template-messages", "confirm_one_action": "confirm", "buttons_5_actions": "buttons",
    "buttons_title_text_61": "buttons", "carousel_11_columns": "carousel", "action_label_21": "action-objects",
    "postback_text_and_display_text": "postback-action", "uri_action_ftp": "uri-action",
    "emojis_21": "text-message", "imagemap_width_not_1040": "imagemap-message",
    "flex_carousel_13": "f-carousel", "flex_box_without_layout": "box", "flex_image_http": "f-image",
    "location_latitude_91": "location-message", "quick_reply_uri_unknown_action": "action-objects",
}


def _text(**extra):
    return dict({"type": "text", "text": "hi"}, **extra)


def _template(template, alt="alt"):
    return {"type": "template", "altText": alt, "template": template}


def _buttons(actions, **extra):
    return _template(dict({"type": "buttons", "text": "Please select", "actions": actions}, **extra))


def _confirm(actions, text="Are you sure?"):
    return _template({"type": "confirm", "text": text, "actions": actions})


def _column(actions=None, **extra):
    return dict({"text": "description", "actions": actions if actions is not None else [dict(MSG_ACTION)]}, **extra)


def _carousel(columns, **extra):
    return _template(dict({"type": "carousel", "columns": columns}, **extra))


def _image_carousel(actions):
    return _template({"type": "image_carousel", "columns": [{"imageUrl": IMG, "action": a} for a in actions]})


def _quick(*actions, **item):
    return _text(quickReply={"items": [dict({"type": "action", "action": a}, **item) for a in actions]})


def _bubble(**parts):
    return dict({"type": "bubble"}, **parts)


def _flex(contents, alt="flex"):
    return {"type": "flex", "altText": alt, "contents": contents}


def _body(*components, layout="vertical"):
    return _flex(_bubble(body={"type": "box", "layout": layout, "contents": list(components)}))


def _imagemap(actions, **extra):
    return dict({"type": "imagemap", "baseUrl": "https://example.com/bot/images/rm001", "altText": "imagemap",
                 "baseSize": {"width": 1040, "height": 1040}, "actions": actions}, **extra)


AREA = {"x": 0, "y": 0, "width": 520, "height": 520}
DT = {"type": "datetimepicker", "label": "When", "data": "storeId=12345", "mode": "datetime"}
CLIP = {"type": "clipboard", "label": "Copy", "clipboardText": "3B48740B"}
CAMERA = {"type": "camera", "label": "Camera"}
CAMERA_ROLL = {"type": "cameraRoll", "label": "Camera roll"}
LOCATION_ACTION = {"type": "location", "label": "Location"}
RICHMENU_SWITCH = {"type": "richmenuswitch", "label": "Page 2", "richMenuAliasId": "richmenu-alias-b",
                   "data": "richmenu-changed-to-b"}
ACTIONS = {"postback": POSTBACK, "message": MSG_ACTION, "uri": URI, "datetimepicker": DT, "clipboard": CLIP,
           "camera": CAMERA, "cameraRoll": CAMERA_ROLL, "location": LOCATION_ACTION,
           "richmenuswitch": RICHMENU_SWITCH}
ACTION_ANCHORS = {"postback": "postback-action", "message": "message-action", "uri": "uri-action",
                  "datetimepicker": "datetime-picker-action", "clipboard": "clipboard-action",
                  "camera": "camera-action", "cameraRoll": "camera-roll-action", "location": "location-action",
                  "richmenuswitch": "richmenu-switch-action"}
IN_TEMPLATES = ("postback", "message", "uri", "datetimepicker", "clipboard")
QUICK_REPLY_ONLY = ("camera", "cameraRoll", "location")


def _case(id, messages, valid, rule, anchor=None, source=None):
    return {"id": id, "messages": messages if isinstance(messages, list) else [messages], "valid": valid,
            "rule": rule, "source": source or _anchor(anchor)}


def _build():
    c = []
    for name, msg in VALID.items():
        c.append(_case("ok_" + name, msg, True, "a well-formed %s message" % name, _OLD_SOURCES[name]))
    for name, msg in list(INVALID_BOTH.items()) + list(INVALID_OURS.items()):
        c.append(_case("bad_" + name, msg, False, name.replace("_", " "), _OLD_SOURCES[name]))

    # -- messages array ---------------------------------------------------------------
    c += [_case("five_messages", [_text()] * 5, True, "a request carries at most 5 messages", "send-push-message"),
          _case("six_messages", [_text()] * 6, False, "a request carries at most 5 messages", "send-push-message")]

    # -- text, text v2 ----------------------------------------------------------------
    c += [_case("text_5000", _text(text="a" * 5000), True, "text: max 5000 characters", "text-message"),
          _case("text_5001", _text(text="a" * 5001), False, "text: max 5000 characters", "text-message"),
          _case("text_2501_smileys", _text(text=SMILE * 2501), False,
                "text: max 5000 characters counted in UTF-16 units (an emoji counts 2)", "text-message"),
          _case("text_emojis_20", _text(text="$" * 20, emojis=[
              {"index": i, "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"} for i in range(20)]), True,
                "emojis: max 20", "text-message"),
          _case("textV2_key_20", {"type": "textV2", "text": "{%s}" % ("k" * 20), "substitution": {
              "k" * 20: {"type": "mention", "mentionee": {"type": "all"}}}}, True,
                "substitution key: 1-20 of a-zA-Z0-9_", "text-message-v2"),
          _case("textV2_key_21", {"type": "textV2", "text": "{%s}" % ("k" * 21), "substitution": {
              "k" * 21: {"type": "mention", "mentionee": {"type": "all"}}}}, False,
                "substitution key: 1-20 of a-zA-Z0-9_", "text-message-v2"),
          _case("textV2_key_hyphen", {"type": "textV2", "text": "{a-b}", "substitution": {
              "a-b": {"type": "mention", "mentionee": {"type": "all"}}}}, False,
                "substitution key: 1-20 of a-zA-Z0-9_", "text-message-v2"),
          _case("textV2_5001", {"type": "textV2", "text": "a" * 5001}, False, "text: max 5000 characters",
                "text-message-v2"),
          _case("textV2_user_without_id", {"type": "textV2", "text": "{u}", "substitution": {
              "u": {"type": "mention", "mentionee": {"type": "user"}}}}, False,
                "a user mention target needs userId", "text-message-v2")]

    # -- sticker, image, video, audio -------------------------------------------------
    c += [_case("sticker_without_package", {"type": "sticker", "stickerId": "1988"}, False, "packageId is required",
                "sticker-message"),
          _case("image_url_2000", {"type": "image", "originalContentUrl": "https://e.com/" + "a" * 1986,
                                   "previewImageUrl": IMG}, True, "originalContentUrl: max 2000 characters",
                "image-message"),
          _case("image_preview_http", {"type": "image", "originalContentUrl": IMG,
                                       "previewImageUrl": "http://example.com/a.jpg"}, False,
                "previewImageUrl: HTTPS only", "image-message"),
          _case("video_without_preview", {"type": "video", "originalContentUrl": "https://example.com/v.mp4"}, False,
                "previewImageUrl is required", "video-message"),
          _case("video_tracking_100", {"type": "video", "originalContentUrl": "https://example.com/v.mp4",
                                       "previewImageUrl": IMG, "trackingId": "t" * 100}, True,
                "trackingId: max 100 characters", "video-message"),
          _case("video_tracking_101", {"type": "video", "originalContentUrl": "https://example.com/v.mp4",
                                       "previewImageUrl": IMG, "trackingId": "t" * 101}, False,
                "trackingId: max 100 characters", "video-message"),
          _case("video_tracking_space", {"type": "video", "originalContentUrl": "https://example.com/v.mp4",
                                         "previewImageUrl": IMG, "trackingId": "a b"}, False,
                "trackingId: half-width alphanumerics and -.=,+*()%$&;:@{}!?<>[] only", "video-message"),
          _case("video_tracking_symbols", {"type": "video", "originalContentUrl": "https://example.com/v.mp4",
                                           "previewImageUrl": IMG, "trackingId": "a-.=,+*()%$&;:@{}!?<>[]"}, True,
                "trackingId: half-width alphanumerics and -.=,+*()%$&;:@{}!?<>[] only", "video-message"),
          _case("audio_http", {"type": "audio", "originalContentUrl": "http://example.com/a.m4a", "duration": 1000},
                False, "originalContentUrl: HTTPS only", "audio-message")]

    # -- location ---------------------------------------------------------------------
    loc = {"type": "location", "title": "t", "address": "a", "latitude": 35.0, "longitude": 139.0}
    c += [_case("location_title_100_utf16", dict(loc, title=SMILE * 50), True,
                "title: max 100 characters (UTF-16 units)", "location-message"),
          _case("location_title_101_utf16", dict(loc, title=SMILE * 50 + "a"), False,
                "title: max 100 characters (UTF-16 units; 51 code points)", "location-message"),
          _case("location_address_100", dict(loc, address="a" * 100), True, "address: max 100 characters",
                "location-message"),
          _case("location_address_101", dict(loc, address="a" * 101), False, "address: max 100 characters",
                "location-message"),
          _case("location_without_latitude", {k: v for k, v in loc.items() if k != "latitude"}, False,
                "latitude is required", "location-message"),
          _case("location_latitude_-90", dict(loc, latitude=-90), True, "latitude: -90 to 90", "location-message"),
          _case("location_latitude_-90.1", dict(loc, latitude=-90.1), False, "latitude: -90 to 90",
                "location-message"),
          _case("location_longitude_180", dict(loc, longitude=180), True, "longitude: -180 to 180",
                "location-message"),
          _case("location_longitude_180.5", dict(loc, longitude=180.5), False, "longitude: -180 to 180",
                "location-message"),
          _case("location_latitude_string", dict(loc, latitude="35.0"), False, "latitude is a number",
                "location-message")]

    # -- sender -----------------------------------------------------------------------
    c += [_case("sender_name_20", _text(sender={"name": "n" * 20}), True, "sender.name: max 20 characters",
                "icon-nickname-switch"),
          _case("sender_name_20_utf16", _text(sender={"name": SMILE * 10}), True,
                "sender.name: max 20 characters (UTF-16 units)", "icon-nickname-switch"),
          _case("sender_name_21_utf16", _text(sender={"name": SMILE * 10 + "a"}), False,
                "sender.name: max 20 characters (UTF-16 units; 11 code points)", "icon-nickname-switch"),
          _case("sender_icon_http", _text(sender={"iconUrl": "http://example.com/i.png"}), False,
                "sender.iconUrl: HTTPS only", "icon-nickname-switch"),
          _case("sender_icon_2000", _text(sender={"iconUrl": "https://e.com/" + "a" * 1986}), True,
                "sender.iconUrl: max 2000 characters", "icon-nickname-switch"),
          _case("sender_icon_2001", _text(sender={"iconUrl": "https://e.com/" + "a" * 1987}), False,
                "sender.iconUrl: max 2000 characters", "icon-nickname-switch")]

    # -- alt texts (template, flex, imagemap) -----------------------------------------
    conf = _confirm([MSG_ACTION, MSG_ACTION])
    c += [_case("template_alt_1500", dict(conf, altText="a" * 1500), True, "altText: max 1500 characters",
                "template-messages"),
          _case("template_alt_401", dict(conf, altText="a" * 401), True,
                "altText: max 1500 characters (no longer 400)", "template-messages"),
          _case("flex_alt_1500", dict(_body({"type": "text", "text": "x"}), altText="a" * 1500), True,
                "altText: max 1500 characters", "flex-message"),
          _case("flex_alt_1501", dict(_body({"type": "text", "text": "x"}), altText="a" * 1501), False,
                "altText: max 1500 characters", "flex-message"),
          _case("imagemap_alt_1500", _imagemap([], altText="a" * 1500), True, "altText: max 1500 characters",
                "imagemap-message"),
          _case("imagemap_alt_1501", _imagemap([], altText="a" * 1501), False, "altText: max 1500 characters",
                "imagemap-message")]

    # -- buttons ----------------------------------------------------------------------
    c += [_case("buttons_4_actions", _buttons([MSG_ACTION] * 4), True, "actions: max 4", "buttons"),
          _case("buttons_text_160", _buttons([MSG_ACTION], text="t" * 160), True,
                "text: max 160 characters without title or image", "buttons"),
          _case("buttons_text_161", _buttons([MSG_ACTION], text="t" * 161), False,
                "text: max 160 characters without title or image", "buttons"),
          _case("buttons_text_160_combining", _buttons([MSG_ACTION], text=ACCENTED * 160), True,
                "text: max 160 grapheme clusters (320 code points)", source=COUNTING),
          _case("buttons_text_161_combining", _buttons([MSG_ACTION], text=ACCENTED * 161), False,
                "text: max 160 grapheme clusters", source=COUNTING),
          _case("buttons_title_text_60", _buttons([MSG_ACTION], title="T", text="t" * 60), True,
                "text: max 60 characters with a title", "buttons"),
          _case("buttons_image_text_61", _buttons([MSG_ACTION], thumbnailImageUrl=IMG, text="t" * 61), False,
                "text: max 60 characters with an image", "buttons"),
          _case("buttons_image_text_60_flags", _buttons([MSG_ACTION], thumbnailImageUrl=IMG, text=FLAG * 60), True,
                "text: max 60 grapheme clusters with an image", source=COUNTING),
          _case("buttons_title_40", _buttons([MSG_ACTION], title="T" * 40, text="t"), True, "title: max 40 characters",
                "buttons"),
          _case("buttons_title_41", _buttons([MSG_ACTION], title="T" * 41, text="t"), False,
                "title: max 40 characters", "buttons"),
          _case("buttons_title_40_family", _buttons([MSG_ACTION], title=FAMILY * 40, text="t"), True,
                "title: max 40 grapheme clusters", source=COUNTING),
          _case("buttons_thumbnail_http", _buttons([MSG_ACTION], thumbnailImageUrl="http://example.com/a.jpg"),
                False, "thumbnailImageUrl: HTTPS only", "buttons"),
          _case("buttons_bad_aspect", _buttons([MSG_ACTION], imageAspectRatio="wide"), False,
                "imageAspectRatio: rectangle or square", "buttons"),
          _case("buttons_bad_background", _buttons([MSG_ACTION], imageBackgroundColor="white"), False,
                "imageBackgroundColor: an RGB color like #FFFFFF", "buttons"),
          _case("buttons_default_action_without_label", _buttons([MSG_ACTION], defaultAction={
              "type": "uri", "uri": "https://example.com"}), True,
                "defaultAction: an action object (its label is not shown)", "buttons"),
          _case("buttons_no_actions", _buttons([]), False, "actions: at least 1", "buttons")]

    # -- confirm ----------------------------------------------------------------------
    c += [_case("confirm_text_240", _confirm([MSG_ACTION, MSG_ACTION], text="t" * 240), True,
                "text: max 240 characters", "confirm"),
          _case("confirm_text_241", _confirm([MSG_ACTION, MSG_ACTION], text="t" * 241), False,
                "text: max 240 characters", "confirm"),
          _case("confirm_text_240_family", _confirm([MSG_ACTION, MSG_ACTION], text=FAMILY * 240), True,
                "text: max 240 grapheme clusters", source=COUNTING),
          _case("confirm_three_actions", _confirm([MSG_ACTION] * 3), False, "actions: exactly 2", "confirm")]

    # -- carousel ---------------------------------------------------------------------
    c += [_case("carousel_10_columns", _carousel([_column()] * 10), True, "columns: max 10", "carousel"),
          _case("carousel_text_120", _carousel([_column(text="t" * 120)]), True,
                "column text: max 120 characters without title or image", "column-object-for-carousel"),
          _case("carousel_text_121", _carousel([_column(text="t" * 121)]), False,
                "column text: max 120 characters without title or image", "column-object-for-carousel"),
          _case("carousel_title_text_60", _carousel([_column(title="T", text="t" * 60)]), True,
                "column text: max 60 characters with a title", "column-object-for-carousel"),
          _case("carousel_title_text_61", _carousel([_column(title="T", text="t" * 61)]), False,
                "column text: max 60 characters with a title", "column-object-for-carousel"),
          _case("carousel_image_text_61", _carousel([_column(thumbnailImageUrl=IMG, text="t" * 61)]), False,
                "column text: max 60 characters with an image", "column-object-for-carousel"),
          _case("carousel_text_120_combining", _carousel([_column(text=ACCENTED * 120)]), True,
                "column text: max 120 grapheme clusters", source=COUNTING),
          _case("carousel_title_41", _carousel([_column(title="T" * 41)]), False, "column title: max 40 characters",
                "column-object-for-carousel"),
          _case("carousel_3_actions", _carousel([_column([MSG_ACTION] * 3)]), True, "column actions: max 3",
                "column-object-for-carousel"),
          _case("carousel_4_actions", _carousel([_column([MSG_ACTION] * 4)]), False, "column actions: max 3",
                "column-object-for-carousel"),
          _case("carousel_unequal_actions", _carousel([_column([MSG_ACTION, URI]), _column([MSG_ACTION])]), False,
                "every column must have the same number of actions", "column-object-for-carousel"),
          _case("carousel_equal_actions", _carousel([_column([MSG_ACTION, URI]), _column([POSTBACK, DT])]), True,
                "every column must have the same number of actions", "column-object-for-carousel"),
          _case("carousel_no_columns", _carousel([]), False, "columns: at least 1", "carousel")]

    # -- image carousel ---------------------------------------------------------------
    c += [_case("image_carousel_label_12", _image_carousel([dict(MSG_ACTION, label="l" * 12)]), True,
                "action label: max 12 characters in an image carousel", "column-object-for-image-carousel"),
          _case("image_carousel_label_13", _image_carousel([dict(MSG_ACTION, label="l" * 13)]), False,
                "action label: max 12 characters in an image carousel", "column-object-for-image-carousel"),
          _case("image_carousel_label_12_family", _image_carousel([dict(MSG_ACTION, label=FAMILY * 12)]), True,
                "action label: max 12 grapheme clusters", source=COUNTING),
          _case("image_carousel_no_label", _image_carousel([{"type": "message", "text": "t"}]), True,
                "action label: optional in an image carousel", "column-object-for-image-carousel"),
          _case("image_carousel_11_columns", _image_carousel([URI] * 11), False, "columns: max 10", "image-carousel"),
          _case("image_carousel_http", _template({"type": "image_carousel", "columns": [
              {"imageUrl": "http://example.com/a.jpg", "action": URI}]}), False, "imageUrl: HTTPS only",
                "column-object-for-image-carousel")]

    # -- actions: every type in every context --------------------------------------------
    for kind, action in ACTIONS.items():
        ok_templates = kind in IN_TEMPLATES
        anchor = ACTION_ANCHORS[kind]
        c.append(_case("buttons_action_" + kind, _buttons([action]), ok_templates,
                       "%s action %s in a template" % (kind, "allowed" if ok_templates else "not allowed"), anchor))
        c.append(_case("confirm_action_" + kind, _confirm([action, MSG_ACTION]), ok_templates,
                       "%s action %s in a template" % (kind, "allowed" if ok_templates else "not allowed"), anchor))
        c.append(_case("carousel_action_" + kind, _carousel([_column([action])]), ok_templates,
                       "%s action %s in a template" % (kind, "allowed" if ok_templates else "not allowed"), anchor))
        c.append(_case("image_carousel_action_" + kind, _image_carousel([action]), ok_templates,
                       "%s action %s in a template" % (kind, "allowed" if ok_templates else "not allowed"), anchor))
        c.append(_case("flex_button_action_" + kind, _body({"type": "button", "action": action}), ok_templates,
                       "%s action %s in a Flex Message" % (kind, "allowed" if ok_templates else "not allowed"),
                       anchor))
        ok_quick = kind != "richmenuswitch"
        c.append(_case("quick_reply_action_" + kind, _quick(action), ok_quick,
                       "%s action %s in a quick reply" % (kind, "allowed" if ok_quick else "not allowed"),
                       source=QUICK_REPLY_DOC))

    # -- action labels and texts (grapheme clusters) ------------------------------------
    c += [_case("message_label_20_family", _buttons([dict(MSG_ACTION, label=FAMILY * 20)]), True,
                "action label: max 20 grapheme clusters (220 UTF-16 units)", source=COUNTING),
          _case("message_label_21_family", _buttons([dict(MSG_ACTION, label=FAMILY * 21)]), False,
                "action label: max 20 grapheme clusters", source=COUNTING),
          _case("message_label_20", _buttons([dict(MSG_ACTION, label="l" * 20)]), True, "action label: max 20",
                "message-action"),
          _case("template_message_without_label", _buttons([{"type": "message", "text": "t"}]), False,
                "action label: required in templates (except image carousel)", "message-action"),
          _case("quick_reply_message_without_label", _quick({"type": "message", "text": "t"}), False,
                "action label: required in quick reply buttons", "message-action"),
          _case("imagemap_message_without_label", _imagemap([{"type": "message", "text": "t", "area": AREA}]), True,
                "imagemap action label: optional", "imagemap-message-action-object"),
          _case("message_text_300", _buttons([dict(MSG_ACTION, text="t" * 300)]), True,
                "message action text: max 300 characters", "message-action"),
          _case("message_text_301", _buttons([dict(MSG_ACTION, text="t" * 301)]), False,
                "message action text: max 300 characters", "message-action"),
          _case("message_text_300_family", _buttons([dict(MSG_ACTION, text=FAMILY * 300)]), True,
                "message action text: max 300 grapheme clusters", source=COUNTING),
          _case("message_without_text", _buttons([{"type": "message", "label": "a"}]), False,
                "message action text is required", "message-action"),
          _case("quick_reply_label_11_flags", _quick(dict(MSG_ACTION, label=FLAG * 11)), True,
                "action label: max 20 grapheme clusters (44 UTF-16 units)", source=COUNTING),
          _case("quick_reply_label_20_flags", _quick(dict(MSG_ACTION, label=FLAG * 20)), True,
                "action label: max 20 grapheme clusters", source=COUNTING),
          _case("quick_reply_label_21", _quick(dict(MSG_ACTION, label="l" * 21)), False,
                "action label: max 20 characters", "quick-reply"),
          _case("quick_reply_camera_label_21", _quick(dict(CAMERA, label="l" * 21)), False,
                "camera action label: max 20 characters", "camera-action"),
          _case("quick_reply_camera_without_label", _quick({"type": "camera"}), False,
                "camera action label: required", "camera-action"),
          _case("quick_reply_location_without_label", _quick({"type": "location"}), False,
                "location action label: required", "location-action"),
          _case("quick_reply_13_items", _quick(*[MSG_ACTION] * 13), True, "items: max 13", "quick-reply"),
          _case("quick_reply_empty", _text(quickReply={"items": []}), False, "items: at least 1 button",
                "quick-reply"),
          _case("quick_reply_icon_1000", _quick(MSG_ACTION, imageUrl="https://e.com/" + "a" * 986), True,
                "imageUrl: max 1000 characters", "items-object"),
          _case("quick_reply_icon_1001", _quick(MSG_ACTION, imageUrl="https://e.com/" + "a" * 987), True,
                "imageUrl: max 2000 characters (not 1000)", "items-object"),
          _case("quick_reply_icon_2000", _quick(MSG_ACTION, imageUrl="https://e.com/" + "a" * 1986), True,
                "imageUrl: max 2000 characters", "items-object"),
          _case("quick_reply_icon_2001", _quick(MSG_ACTION, imageUrl="https://e.com/" + "a" * 1987), False,
                "imageUrl: max 2000 characters", "items-object"),
          _case("quick_reply_icon_http", _quick(MSG_ACTION, imageUrl="http://example.com/i.png"), False,
                "imageUrl: HTTPS only", "items-object"),
          _case("quick_reply_item_type", _text(quickReply={"items": [{"type": "button", "action": MSG_ACTION}]}),
                False, "item type: action", "items-object")]

    # -- postback -----------------------------------------------------------------------
    c += [_case("postback_display_100_family", _buttons([dict(POSTBACK, displayText=FAMILY * 100)]), True,
                "displayText: max 300 grapheme clusters", source=COUNTING),
          _case("postback_display_300", _buttons([dict(POSTBACK, displayText="d" * 300)]), True,
                "displayText: max 300 characters", "postback-action"),
          _case("postback_display_301", _buttons([dict(POSTBACK, displayText="d" * 301)]), False,
                "displayText: max 300 characters", "postback-action"),
          _case("postback_data_300", _buttons([dict(POSTBACK, data="d" * 300)]), True, "data: max 300 characters",
                "postback-action"),
          _case("postback_data_150_smileys_plus", _buttons([dict(POSTBACK, data=SMILE * 150 + "d")]), False,
                "data: max 300 characters (UTF-16 units; not in the grapheme list)", "postback-action"),
          _case("postback_data_empty", _buttons([dict(POSTBACK, data="")]), True,
                "data: max 300 characters, no minimum (the empty string is allowed)", "postback-action"),
          _case("postback_without_data", _buttons([{"type": "postback", "label": "a"}]), False,
                "data is required", "postback-action"),
          _case("postback_text_only", _buttons([{"type": "postback", "label": "a", "data": "d", "text": "t"}]), True,
                "text (deprecated) may be given instead of displayText", "postback-action"),
          _case("postback_fill_in_300", _quick(dict(POSTBACK, inputOption="openKeyboard", fillInText="f" * 300)),
                True, "fillInText: max 300 characters", "postback-action"),
          _case("postback_fill_in_301", _quick(dict(POSTBACK, inputOption="openKeyboard", fillInText="f" * 301)),
                False, "fillInText: max 300 characters", "postback-action"),
          _case("postback_bad_input_option", _quick(dict(POSTBACK, inputOption="openCamera")), False,
                "inputOption: closeRichMenu, openRichMenu, openKeyboard or openVoice", "postback-action"),
          _case("postback_label_21", _buttons([dict(POSTBACK, label="l" * 21)]), False, "label: max 20 characters",
                "postback-action")]

    # -- uri, datetimepicker, clipboard ----------------------------------------------------
    c += [_case("uri_tel", _buttons([dict(URI, uri="tel:09001234567")]), True, "uri: http, https, line or tel",
                "uri-action"),
          _case("uri_line", _buttons([dict(URI, uri="line://nv/location")]), True, "uri: http, https, line or tel",
                "uri-action"),
          _case("uri_javascript", _buttons([dict(URI, uri="javascript:alert(1)")]), False,
                "uri: http, https, line or tel", "uri-action"),
          _case("uri_1000", _buttons([dict(URI, uri="https://e.com/" + "a" * 986)]), True, "uri: max 1000 characters",
                "uri-action"),
          _case("uri_1001", _buttons([dict(URI, uri="https://e.com/" + "a" * 987)]), False,
                "uri: max 1000 characters", "uri-action"),
          _case("uri_alt_desktop", _buttons([dict(URI, altUri={"desktop": "https://example.com/pc"})]), True,
                "altUri.desktop: a URI for LINE on macOS and Windows", "uri-action"),
          _case("datetimepicker_date", _buttons([dict(DT, mode="date", initial="2017-06-18", min="1900-01-01",
                                                      max="2100-12-31")]), True,
                "initial/min/max: yyyy-MM-dd in date mode", "datetime-picker-action"),
          _case("datetimepicker_time", _buttons([dict(DT, mode="time", initial="23:59", min="00:00")]), True,
                "initial/min/max: HH:mm in time mode", "datetime-picker-action"),
          _case("datetimepicker_datetime", _buttons([dict(DT, initial="2017-06-18T06:15", min="2017-06-18t00:00")]),
                True, "initial/min/max: yyyy-MM-ddTHH:mm in datetime mode", "datetime-picker-action"),
          _case("datetimepicker_date_in_time_mode", _buttons([dict(DT, mode="time", initial="2017-06-18")]), False,
                "initial/min/max: HH:mm in time mode", "datetime-picker-action"),
          _case("datetimepicker_time_24", _buttons([dict(DT, mode="time", initial="24:00")]), False,
                "time: 00:00 to 23:59", "datetime-picker-action"),
          _case("datetimepicker_date_1899", _buttons([dict(DT, mode="date", min="1899-12-31")]), False,
                "date: 1900-01-01 to 2100-12-31", "datetime-picker-action"),
          _case("datetimepicker_data_empty", _buttons([dict(DT, data="")]), True,
                "data: max 300 characters, no minimum (the empty string is allowed)", "datetime-picker-action"),
          _case("datetimepicker_date_feb_31", _buttons([dict(DT, mode="date", initial="2023-02-31")]), False,
                "date: a real calendar date in yyyy-MM-dd", "date-and-time-format"),
          _case("datetimepicker_date_apr_31", _buttons([dict(DT, mode="date", max="2024-04-31")]), False,
                "date: a real calendar date in yyyy-MM-dd", "date-and-time-format"),
          _case("datetimepicker_date_leap_day", _buttons([dict(DT, mode="date", initial="2024-02-29")]), True,
                "date: a real calendar date in yyyy-MM-dd (2024 is a leap year)", "date-and-time-format"),
          _case("datetimepicker_datetime_feb_29_2023", _buttons([dict(DT, initial="2023-02-29T10:00")]), False,
                "datetime: a real calendar date in yyyy-MM-ddTHH:mm", "date-and-time-format"),
          _case("datetimepicker_datetime_2100_12_31", _buttons([dict(DT, max="2100-12-31T23:59")]), True,
                "datetime: up to 2100-12-31T23:59", "date-and-time-format"),
          _case("datetimepicker_without_mode", _buttons([{"type": "datetimepicker", "label": "a", "data": "d"}]),
                False, "mode is required", "datetime-picker-action"),
          _case("clipboard_1000", _buttons([dict(CLIP, clipboardText="c" * 1000)]), True,
                "clipboardText: max 1000 characters", "clipboard-action"),
          _case("clipboard_without_text", _buttons([{"type": "clipboard", "label": "a"}]), False,
                "clipboardText is required", "clipboard-action")]

    # -- imagemap ---------------------------------------------------------------------------
    c += [_case("imagemap_50_actions", _imagemap([{"type": "uri", "linkUri": "https://e.com", "area": AREA}] * 50),
                True, "actions: max 50", "imagemap-message"),
          _case("imagemap_51_actions", _imagemap([{"type": "uri", "linkUri": "https://e.com", "area": AREA}] * 51),
                False, "actions: max 50", "imagemap-message"),
          _case("imagemap_label_50", _imagemap([{"type": "uri", "linkUri": "https://e.com", "area": AREA,
                                                 "label": "l" * 50}]), True, "imagemap action label: max 50",
                "imagemap-uri-action-object"),
          _case("imagemap_label_51", _imagemap([{"type": "uri", "linkUri": "https://e.com", "area": AREA,
                                                 "label": "l" * 51}]), False, "imagemap action label: max 50",
                "imagemap-uri-action-object"),
          _case("imagemap_message_text_400", _imagemap([{"type": "message", "text": "t" * 400, "area": AREA}]), True,
                "imagemap message text: max 400 characters", "imagemap-message-action-object"),
          _case("imagemap_message_text_401", _imagemap([{"type": "message", "text": "t" * 401, "area": AREA}]),
                False, "imagemap message text: max 400 characters", "imagemap-message-action-object"),
          _case("imagemap_postback", _imagemap([dict(POSTBACK, area=AREA)]), False,
                "imagemap actions: uri, message or clipboard", "imagemap-action-objects"),
          _case("imagemap_base_http", _imagemap([], baseUrl="http://example.com/i"), False, "baseUrl: HTTPS only",
                "imagemap-message"),
          _case("imagemap_video_without_area", _imagemap([], video={
              "originalContentUrl": "https://example.com/v.mp4", "previewImageUrl": IMG}), False,
                "video.area is required", "imagemap-message"),
          _case("imagemap_external_label_30", _imagemap([], video={
              "originalContentUrl": "https://example.com/v.mp4", "previewImageUrl": IMG, "area": AREA,
              "externalLink": {"linkUri": "https://example.com", "label": "l" * 30}}), True,
                "video.externalLink.label: max 30 characters", "imagemap-message"),
          _case("imagemap_external_label_31", _imagemap([], video={
              "originalContentUrl": "https://example.com/v.mp4", "previewImageUrl": IMG, "area": AREA,
              "externalLink": {"linkUri": "https://example.com", "label": "l" * 31}}), False,
                "video.externalLink.label: max 30 characters", "imagemap-message"),
          _case("imagemap_area_negative", _imagemap([{"type": "uri", "linkUri": "https://e.com",
                                                      "area": dict(AREA, x=-1)}]), False,
                "area: x, y, width and height are at least 0", "imagemap-area-object")]

    # -- flex: every component ---------------------------------------------------------------
    video = {"type": "video", "url": "https://example.com/v.mp4", "previewUrl": IMG,
             "altContent": {"type": "image", "url": IMG, "size": "full"}, "aspectRatio": "20:13"}
    c += [_case("flex_box_nested", _body({"type": "box", "layout": "horizontal", "spacing": "sm", "contents": [
              {"type": "text", "text": "a", "flex": 1}, {"type": "separator", "color": "#CCCCCC"},
              {"type": "filler"}]}), True, "box: nested boxes with layout and contents", "box"),
          _case("flex_box_bad_layout", _body({"type": "box", "layout": "grid", "contents": []}), False,
                "box layout: horizontal, vertical or baseline", "box"),
          _case("flex_box_without_contents", _body({"type": "box", "layout": "vertical"}), False,
                "box contents is required", "box"),
          _case("flex_button", _body({"type": "button", "style": "link", "height": "sm", "action": URI}), True,
                "button: action required", "button"),
          _case("flex_button_without_action", _body({"type": "button", "style": "primary"}), False,
                "button: action required", "button"),
          _case("flex_button_bad_style", _body({"type": "button", "style": "danger", "action": URI}), False,
                "button style: primary, secondary or link", "button"),
          _case("flex_button_label_40", _body({"type": "button", "action": dict(URI, label="l" * 40)}), True,
                "action label: max 40 characters in a Flex Message", "action-objects"),
          _case("flex_button_label_21", _body({"type": "button", "action": dict(URI, label="l" * 21)}), True,
                "action label: max 40 characters in a Flex Message (not 20)", "action-objects"),
          _case("flex_button_label_41", _body({"type": "button", "action": dict(URI, label="l" * 41)}), False,
                "action label: max 40 characters in a Flex Message", "action-objects"),
          _case("flex_image", _flex(_bubble(hero={"type": "image", "url": IMG, "size": "full",
                                                  "aspectMode": "cover", "aspectRatio": "20:13", "action": URI})),
                True, "image: url required, HTTPS", "f-image"),
          _case("flex_image_without_url", _flex(_bubble(hero={"type": "image"})), False, "image: url required",
                "f-image"),
          _case("flex_video_hero", _flex(_bubble(size="mega", hero=video)), True,
                "video: url, previewUrl and altContent, in the hero block", "f-video"),
          _case("flex_video_without_alt", _flex(_bubble(hero={k: v for k, v in video.items() if k != "altContent"})),
                False, "video: altContent required", "f-video"),
          _case("flex_video_in_body", _body(video), False, "video: only in the hero block", "f-video"),
          _case("flex_icon", _body({"type": "icon", "url": IMG}, {"type": "text", "text": "4.0"}, layout="baseline"),
                True, "icon: url required, in a baseline box", "icon"),
          _case("flex_icon_http", _body({"type": "icon", "url": "http://example.com/i.png"}, layout="baseline"),
                False, "icon url: HTTPS only", "icon"),
          _case("flex_text_without_text", _body({"type": "text"}), False, "text: text or contents required",
                "f-text"),
          _case("flex_text_spans", _body({"type": "text", "contents": [
              {"type": "span", "text": "a", "weight": "bold", "decoration": "underline"},
              {"type": "span", "text": "b", "style": "italic"}]}), True, "text.contents: spans", "f-text"),
          _case("flex_text_contents_box", _body({"type": "text", "contents": [
              {"type": "box", "layout": "vertical", "contents": []}]}), False, "text.contents: only spans", "f-text"),
          _case("flex_text_contents_text", _body({"type": "text", "contents": [{"type": "text", "text": "a"}]}),
                False, "text.contents: only spans", "f-text"),
          _case("flex_text_bad_weight", _body({"type": "text", "text": "a", "weight": "heavy"}), False,
                "text weight: regular or bold", "f-text"),
          _case("flex_span_without_text", _body({"type": "text", "contents": [{"type": "span"}]}), False,
                "span: text required", "span"),
          _case("flex_span_in_box", _body({"type": "span", "text": "a"}), False,
                "span: only inside a text component", "span"),
          _case("flex_separator", _body({"type": "separator", "margin": "xl"}), True, "separator", "separator"),
          _case("flex_separator_rgba", _body({"type": "separator", "color": "#CCCCCC80"}), True,
                "separator color: a hexadecimal color code, #RRGGBB or #RRGGBBAA", "separator"),
          _case("flex_separator_7_digits", _body({"type": "separator", "color": "#CCCCCC8"}), False,
                "separator color: a hexadecimal color code, #RRGGBB or #RRGGBBAA", "separator"),
          _case("flex_separator_bad_color", _body({"type": "separator", "color": "grey"}), False,
                "separator color: a hexadecimal color code, #RRGGBB or #RRGGBBAA", "separator"),
          _case("flex_filler", _body({"type": "filler", "flex": 2}), True, "filler", "filler"),
          _case("flex_header_not_box", _flex(_bubble(header={"type": "text", "text": "a"})), False,
                "header: a box", "bubble"),
          _case("flex_bubble_bad_size", _flex(_bubble(size="huge")), False,
                "bubble size: nano, micro, deca, hecto, kilo, mega or giga", "bubble"),
          _case("flex_bubble_action", _flex(_bubble(action=POSTBACK, body={"type": "box", "layout": "vertical",
                                                                          "contents": []})), True,
                "bubble action", "bubble"),
          _case("flex_carousel_12", _flex({"type": "carousel", "contents": [_bubble()] * 12}), True,
                "carousel: max 12 bubbles", "f-carousel"),
          _case("flex_carousel_of_boxes", _flex({"type": "carousel", "contents": [
              {"type": "box", "layout": "vertical", "contents": []}]}), False, "carousel contents: bubbles",
                "f-carousel"),
          _case("flex_bad_container", _flex({"type": "box", "layout": "vertical", "contents": []}), False,
                "contents: a bubble or carousel container", "container"),
          _case("flex_box_action_camera", _body({"type": "box", "layout": "vertical", "contents": [],
                                                 "action": CAMERA}), False,
                "camera action: quick reply only", "camera-action")]

    # -- coupon -------------------------------------------------------------------------------
    c += [_case("coupon_without_id", {"type": "coupon"}, False, "couponId is required", "coupon-message")]
    return c


CASES = _build()
