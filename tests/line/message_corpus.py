"""A corpus of LINE message objects: valid ones of every type, and invalid
ones, split by who catches them (LINE's OpenAPI and our schema, or only our
schema because the rule is in LINE's reference but not in the OpenAPI)."""

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
    "alt_text_401": {"type": "template", "altText": "a" * 401, "template": {
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
