"""Sandbox emulation of LINE's rich menus and message content endpoints.

As LINE answers (developers.line.biz/en/reference/messaging-api/#rich-menu,
#get-content, #verify-video-or-audio-preparation-status):

* a rich menu body is judged by the pack's own schema
  (``schemas/line/richmenu.json``) plus the rules it cannot express
  (``richmenu_problems``: the aspect ratio): 400 with
  ``details``, as line.py does for messages; create answers
  ``{"richMenuId"}``, validate ``{}``;
* unknown rich menu IDs are 404; an image is accepted once per menu (a
  second upload: 400 "An image has already been uploaded to the richmenu"),
  only JPEG or PNG whose bytes match the Content-Type, at most 1 MB, with
  LINE's dimension rules; a menu without an image cannot be the default
  or linked (400);
* bulk link/unlink take 1-500 user IDs and answer 202 ``{}``;
* message content is binary with its Content-Type; unknown message IDs 404;
  a video's transcoding reads "processing" on the first poll, then
  "succeeded".

Demo data (module constants, used by the docs examples): ``DEMO_RICH_MENU_ID``
(with an image, the default), ``DEMO_EMPTY_RICH_MENU_ID`` (no image yet),
``DEMO_IMAGE_MESSAGE_ID`` (a small real PNG), ``DEMO_VIDEO_MESSAGE_ID``.
``DEMO_IMAGE_PATH`` is a 2500x843 PNG the sandbox writes once (in a
directory of its own under /tmp, only if that directory is the current
user's and no symbolic link) so the upload example has a file to send.
"""
import functools
import os
import stat
import struct
import tempfile
import zlib

from ..actions.line.richmenu import (BULK_MAX, MAX_IMAGE_BYTES, ImageError, image_info, richmenu_problems,
                                     size_problems)
from ..validation import errors_to_details, iter_errors
from .server import Reply

DEMO_RICH_MENU_ID = "richmenu-5a1b2c3d4e5f60718293a4b5c6d7e8f9"
DEMO_EMPTY_RICH_MENU_ID = "richmenu-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
DEMO_IMAGE_MESSAGE_ID = "510000000000000001"
DEMO_VIDEO_MESSAGE_ID = "510000000000000002"
DEMO_LINKED_USER_ID = "U" + "1" * 32  # linked to DEMO_RICH_MENU_ID on a fresh sandbox
DEMO_IMAGE_PATH = os.path.join("/tmp" if os.name == "posix" else tempfile.gettempdir(),
                               "line-connector-sandbox", "richmenu-2500x843.png")

ALREADY_UPLOADED = "An image has already been uploaded to the richmenu"
NO_IMAGE = "must upload richmenu image before applying it to user"
NOT_FOUND = "Not found"


def make_png(width, height, rgb=(6, 199, 85)):
    """A real, decodable PNG of one colour (8-bit RGB), made without a library."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


@functools.lru_cache(maxsize=None)
def demo_png():
    return make_png(2500, 843)


@functools.lru_cache(maxsize=None)
def demo_photo():
    return make_png(64, 48, (250, 120, 30))


DEMO_MENU = {
    "size": {"width": 2500, "height": 843}, "selected": True, "name": "Demo menu", "chatBarText": "Menu",
    "areas": [{"bounds": {"x": 0, "y": 0, "width": 1250, "height": 843},
               "action": {"type": "message", "label": "Help", "text": "help"}},
              {"bounds": {"x": 1250, "y": 0, "width": 1250, "height": 843},
               "action": {"type": "uri", "label": "Site", "uri": "https://example.com/"}}],
}


def install(state):
    state.richmenus = {
        DEMO_RICH_MENU_ID: {"menu": dict(DEMO_MENU), "image": ("image/png", demo_png())},
        DEMO_EMPTY_RICH_MENU_ID: {"menu": dict(DEMO_MENU, name="Demo menu without image", selected=False),
                                  "image": None},
    }
    state.default_richmenu = DEMO_RICH_MENU_ID
    state.user_richmenus = {}   # userId -> richMenuId
    # a user linked before the sandbox started (docs example of line_get_user_rich_menu);
    # kept apart so user_richmenus holds only what callers linked
    state.demo_linked = {DEMO_LINKED_USER_ID: DEMO_RICH_MENU_ID}
    state.bulk_requests = []    # (kind, number of user IDs) per bulk call
    # messageId -> {"content_type", "data", "transcoding": statuses to read in turn}
    state.contents = {
        DEMO_IMAGE_MESSAGE_ID: {"content_type": "image/png", "data": demo_photo(), "transcoding": ["succeeded"]},
        DEMO_VIDEO_MESSAGE_ID: {"content_type": "video/mp4", "data": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 512,
                                "transcoding": ["processing", "succeeded"]},
    }
    _write_demo_image()


@functools.lru_cache(maxsize=None)
def _write_demo_image():
    """Write DEMO_IMAGE_PATH once per process, safely in a shared /tmp:
    the directory is created 0700, used only if it is ours and no symbolic
    link, and the file is replaced atomically. Any problem: skipped (only
    the upload example needs it)."""
    folder = os.path.dirname(DEMO_IMAGE_PATH)
    try:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            return
        try:
            with open(DEMO_IMAGE_PATH, "rb") as fh:
                if fh.read(MAX_IMAGE_BYTES + 1) == demo_png():
                    return
        except OSError:
            pass
        fd, temp = tempfile.mkstemp(dir=folder, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(demo_png())
            os.chmod(temp, 0o644)
            os.replace(temp, DEMO_IMAGE_PATH)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
    except OSError:
        pass


def routes(emulator):
    from .line import body_error, error

    state = emulator.state

    def menu_or_404(menu_id):
        with state.lock:
            entry = state.richmenus.get(menu_id)
        return entry, (None if entry is not None else error(404, NOT_FOUND))

    def check_menu(req):
        body, bad = emulator.parse(req)
        if bad:
            return None, bad
        details = [(d["path"], d["message"]) for d in errors_to_details(iter_errors("line/richmenu.json", body), "")]
        if not details:
            details = richmenu_problems(body)
        if details:
            return None, body_error(details)
        return body, None

    def create(req):
        body, bad = check_menu(req)
        if bad:
            return bad
        import secrets

        menu_id = "richmenu-" + secrets.token_hex(16)
        with state.lock:
            state.richmenus[menu_id] = {"menu": body, "image": None}
        return Reply(200, {"richMenuId": menu_id})

    def validate(req):
        body, bad = check_menu(req)
        return bad or Reply(200, {})

    def listing(req):
        with state.lock:
            menus = [dict(e["menu"], richMenuId=i) for i, e in state.richmenus.items()]
        return Reply(200, {"richmenus": menus})

    def get_menu(req):
        entry, missing = menu_or_404(req.params["richMenuId"])
        return missing or Reply(200, dict(entry["menu"], richMenuId=req.params["richMenuId"]))

    def delete(req):
        menu_id = req.params["richMenuId"]
        with state.lock:
            if state.richmenus.pop(menu_id, None) is None:
                return error(404, NOT_FOUND)
            if state.default_richmenu == menu_id:
                state.default_richmenu = None
            state.user_richmenus = {u: m for u, m in state.user_richmenus.items() if m != menu_id}
        return Reply(200, {})

    def upload(req):
        menu_id = req.params["richMenuId"]
        entry, missing = menu_or_404(menu_id)
        if missing:
            return missing
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype not in ("image/jpeg", "image/png"):
            return error(415, "Unsupported Media Type: the image must be image/jpeg or image/png")
        if len(req.body) > MAX_IMAGE_BYTES:
            return error(400, "The image file is larger than 1 MB")
        import io

        try:
            real, width, height = image_info(io.BytesIO(req.body), len(req.body))
        except ImageError as exc:
            return error(400, "Invalid image: %s" % exc)
        if real != ctype:
            return error(400, "Invalid image: the Content-Type is %s but the image is %s" % (ctype, real))
        problems = size_problems(width, height, "the image")
        if problems:
            return error(400, "Invalid image size: " + "; ".join(m for _, m in problems))
        with state.lock:
            if entry["image"] is not None:
                return error(400, ALREADY_UPLOADED)
            entry["image"] = (ctype, bytes(req.body))
        return Reply(200, {})

    def download(req):
        entry, missing = menu_or_404(req.params["richMenuId"])
        if missing:
            return missing
        if entry["image"] is None:
            return error(404, NOT_FOUND)
        ctype, data = entry["image"]
        return Reply(200, data, content_type=ctype)

    def usable(menu_id):
        entry, missing = menu_or_404(menu_id)
        if missing:
            return missing
        if entry["image"] is None:
            return error(400, NO_IMAGE)
        return None

    def set_default(req):
        bad = usable(req.params["richMenuId"])
        if bad:
            return bad
        with state.lock:
            state.default_richmenu = req.params["richMenuId"]
        return Reply(200, {})

    def get_default(req):
        with state.lock:
            current = state.default_richmenu
        return Reply(200, {"richMenuId": current}) if current else error(404, "no default richmenu")

    def cancel_default(req):
        with state.lock:
            state.default_richmenu = None
        return Reply(200, {})

    def link(req):
        bad = usable(req.params["richMenuId"])
        if bad:
            return bad
        with state.lock:
            state.user_richmenus[req.params["userId"]] = req.params["richMenuId"]
            state.demo_linked.pop(req.params["userId"], None)
        return Reply(200, {})

    def user_menu(req):
        with state.lock:
            current = state.user_richmenus.get(req.params["userId"]) or state.demo_linked.get(req.params["userId"])
        return Reply(200, {"richMenuId": current}) if current else error(404, "the user has no richmenu")

    def unlink(req):
        with state.lock:
            state.user_richmenus.pop(req.params["userId"], None)
            state.demo_linked.pop(req.params["userId"], None)
        return Reply(200, {})

    def user_ids(body):
        ids = body.get("userIds")
        if not isinstance(ids, list) or not 1 <= len(ids) <= BULK_MAX:
            return None, body_error([("userIds", "Size must be between 1 and %d" % BULK_MAX)])
        bad = [i for i, u in enumerate(ids) if not (isinstance(u, str) and len(u) == 33 and u[0] == "U")]
        if bad:
            return None, body_error([("userIds[%d]" % i, "invalid user ID") for i in bad])
        return ids, None

    def bulk_link(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        unknown = set(body) - {"richMenuId", "userIds"}
        if unknown:
            return body_error([(k, "The property, %s, in the request body is invalid" % k) for k in sorted(unknown)])
        ids, bad = user_ids(body)
        if bad:
            return bad
        if not isinstance(body.get("richMenuId"), str):
            return body_error([("richMenuId", "must be specified")])
        bad = usable(body["richMenuId"])
        if bad:
            return bad
        with state.lock:
            for u in ids:
                state.user_richmenus[u] = body["richMenuId"]
                state.demo_linked.pop(u, None)
            state.bulk_requests.append(("link", len(ids)))
        return Reply(202, {})

    def bulk_unlink(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        unknown = set(body) - {"userIds"}
        if unknown:
            return body_error([(k, "The property, %s, in the request body is invalid" % k) for k in sorted(unknown)])
        ids, bad = user_ids(body)
        if bad:
            return bad
        with state.lock:
            for u in ids:
                state.user_richmenus.pop(u, None)
                state.demo_linked.pop(u, None)
            state.bulk_requests.append(("unlink", len(ids)))
        return Reply(202, {})

    def content(req):
        with state.lock:
            entry = state.contents.get(req.params["messageId"])
        if entry is None:
            return error(404, NOT_FOUND)
        return Reply(200, entry["data"], content_type=entry["content_type"])

    def transcoding(req):
        with state.lock:
            entry = state.contents.get(req.params["messageId"])
            if entry is None:
                return error(404, NOT_FOUND)
            steps = entry["transcoding"]
            status = steps.pop(0) if len(steps) > 1 else steps[0]
        return Reply(200, {"status": status})

    a = emulator.authed
    return {
        ("POST", "/v2/bot/richmenu"): a(create),
        ("POST", "/v2/bot/richmenu/validate"): a(validate),
        ("GET", "/v2/bot/richmenu/list"): a(listing),
        ("GET", "/v2/bot/richmenu/{richMenuId}"): a(get_menu),
        ("DELETE", "/v2/bot/richmenu/{richMenuId}"): a(delete),
        ("POST", "/v2/bot/richmenu/{richMenuId}/content"): a(upload),
        ("GET", "/v2/bot/richmenu/{richMenuId}/content"): a(download),
        ("POST", "/v2/bot/user/all/richmenu/{richMenuId}"): a(set_default),
        ("GET", "/v2/bot/user/all/richmenu"): a(get_default),
        ("DELETE", "/v2/bot/user/all/richmenu"): a(cancel_default),
        ("POST", "/v2/bot/user/{userId}/richmenu/{richMenuId}"): a(link),
        ("GET", "/v2/bot/user/{userId}/richmenu"): a(user_menu),
        ("DELETE", "/v2/bot/user/{userId}/richmenu"): a(unlink),
        ("POST", "/v2/bot/richmenu/bulk/link"): a(bulk_link),
        ("POST", "/v2/bot/richmenu/bulk/unlink"): a(bulk_unlink),
        ("GET", "/v2/bot/message/{messageId}/content"): a(content),
        ("GET", "/v2/bot/message/{messageId}/content/transcoding"): a(transcoding),
    }
