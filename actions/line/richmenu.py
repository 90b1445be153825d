"""Rich menus: create, validate, upload the image, list, delete, default,
link and unlink (developers.line.biz/en/reference/messaging-api/#rich-menu).

Most of them are declarative ``LineAction``s. What the pattern cannot say is
here, once:

* the rich menu rule JSON Schema cannot express (the ``size`` aspect
  ratio) in ``richmenu_problems``, used by create, validate and the
  sandbox alike;
* the image rules (JPEG or PNG told by its magic bytes, at most 1 MB,
  dimensions read from the file's own header) in ``image_info``, checked
  before anything is sent; the file is read once (at most 1 MB + 1 byte,
  ``read_image``) and exactly the checked bytes are sent;
* link/unlink: one user by path, or any number of users through the bulk
  endpoints, 500 per request (``ChunkedAction``), one result per chunk with
  the user IDs it carried.
"""
import io
import os
import stat
import struct
import zlib

from line_connector.action import ChunkedAction
from line_connector.errors import InputError

from .base import LineAction

# "Rich menu object" / "Size object" (#rich-menu-object, #size-object) and
# "Upload rich menu image" (#upload-rich-menu-image): the image and the menu
# share these bounds.
MIN_WIDTH, MAX_WIDTH, MIN_HEIGHT, MIN_ASPECT = 800, 2500, 250, 1.45
#: "Max file size: 1 MB" (#upload-rich-menu-image), read as 1 MiB
MAX_IMAGE_BYTES = 1024 * 1024
#: LINE's bulk link/unlink take at most 500 user IDs (#link-rich-menu-to-users)
BULK_MAX = 500

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
#: JPEG start-of-frame markers carrying the dimensions (all SOFn except DHT
#: C4, JPG C8 and DAC CC, which share the range)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def size_problems(width, height, what):
    """[(field, message)] for a width/height breaking LINE's size rules."""
    out = []
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        out.append(("width", "%s width must be %d to %d pixels, got %d" % (what, MIN_WIDTH, MAX_WIDTH, width)))
    if height < MIN_HEIGHT:
        out.append(("height", "%s height must be at least %d pixels, got %d" % (what, MIN_HEIGHT, height)))
    if height > 0 and width / height < MIN_ASPECT:
        out.append(("height", "%s aspect ratio (width / height) must be at least %.2f, got %d/%d = %.3f"
                    % (what, MIN_ASPECT, width, height, width / height)))
    return out


def richmenu_problems(menu):
    """[(property, message)] for the rich menu rule beyond its JSON Schema:
    the size's aspect ratio (#size-object). Areas reaching past the menu are
    not refused: LINE's reference states no such rule. ``menu`` has already
    passed schemas/line/richmenu.json (types are right)."""
    out = []
    size = menu.get("size") or {}
    width, height = size.get("width"), size.get("height")
    if not (isinstance(width, int) and isinstance(height, int)):
        return out
    out += [("size." + f, m) for f, m in size_problems(width, height, "the rich menu")]
    return out


class ImageError(ValueError):
    """Why a file is not an image LINE accepts for a rich menu."""


def image_info(fh, size):
    """(content type, width, height) of the JPEG or PNG in the open binary
    file ``fh`` of ``size`` bytes, read from its own header (not the name).

    PNG: the signature then an IHDR chunk whose CRC must match (a header
    whose dimensions were edited, or a file that only starts like a PNG, is
    refused). JPEG: FF D8 FF, then segments walked by their lengths to the
    first SOFn marker. Raises ImageError naming the rule."""
    fh.seek(0)
    head = fh.read(33)
    if head.startswith(PNG_MAGIC):
        if len(head) < 33 or head[12:16] != b"IHDR":
            raise ImageError("a PNG must start with its IHDR chunk; this one does not")
        length = struct.unpack(">I", head[8:12])[0]
        crc = struct.unpack(">I", head[29:33])[0]
        if length != 13 or zlib.crc32(head[12:29]) & 0xFFFFFFFF != crc:
            raise ImageError("the PNG header (IHDR) is corrupt: its checksum does not match its content")
        width, height = struct.unpack(">II", head[16:24])
        return "image/png", width, height
    if head.startswith(JPEG_MAGIC):
        pos = 2
        while pos + 4 <= size:
            fh.seek(pos)
            seg = fh.read(4)
            if len(seg) < 4 or seg[0] != 0xFF:
                break
            marker = seg[1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
                pos += 2
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame
                break
            length = struct.unpack(">H", seg[2:4])[0]
            if length < 2:
                break
            if marker in _SOF:
                frame = fh.read(5)
                if len(frame) < 5 or length < 7:
                    break
                height, width = struct.unpack(">HH", frame[1:5])
                if width == 0 or height == 0:
                    raise ImageError("the JPEG frame header gives a zero dimension")
                return "image/jpeg", width, height
            pos += 2 + length
        raise ImageError("the JPEG has no readable frame header (SOF marker) giving its dimensions")
    raise ImageError("must be a JPEG or PNG image (told by its first bytes, not its name)")


def read_image(path, limit=MAX_IMAGE_BYTES):
    """The bytes of the file at ``path``, read once: at most ``limit + 1``
    (one more than allowed, to tell "too large" without reading the rest).

    Opened with O_NONBLOCK and O_NOCTTY and checked with fstat before any
    read, so a FIFO, a device or a terminal is refused at once instead of
    blocking past the deadline. A symbolic link is followed: a link to an
    image is a normal thing to pass, and the file is only read. The caller
    checks and sends these exact bytes, so a file that grows, shrinks or is
    swapped after the check cannot change what is sent (nor its framing).
    Raises ImageError (not readable, not a regular file)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageError("cannot be read: %s" % (exc.strerror or type(exc).__name__))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("must be a regular file (not a directory, FIFO or device)")
        chunks, got = [], 0
        while got <= limit:
            piece = os.read(fd, min(64 * 1024, limit + 1 - got))
            if not piece:
                break
            chunks.append(piece)
            got += len(piece)
        return b"".join(chunks)
    except OSError as exc:
        raise ImageError("cannot be read: %s" % (exc.strerror or type(exc).__name__))
    finally:
        os.close(fd)


class _RichMenuBody(LineAction):
    fields = ("size", "selected", "name", "chatBarText", "areas")

    def build(self, inputs):
        problems = richmenu_problems(inputs)
        if problems:
            raise InputError("invalid inputs", [{"path": "inputs." + p, "message": m} for p, m in problems])
        return super().build(inputs)


class CreateRichMenu(_RichMenuBody):
    """POST /v2/bot/richmenu. No retry key exists for it: only an attempt
    that never connected is resent; an unknown outcome says how to check."""
    method = "POST"
    path = "/v2/bot/richmenu"

    def judge(self, request, result):
        ok = super().judge(request, result)
        if not ok and result.get("delivery") == "unknown":
            result["note"] = ("outcome unknown: the request may have reached LINE and created the rich menu; it "
                              "was not resent because this endpoint has no retry key. Before creating it again, "
                              "run line_list_rich_menus and look for a menu with this name")
        return ok


class ValidateRichMenu(_RichMenuBody):
    method = "POST"
    read_only = True  # LINE only checks the object
    path = "/v2/bot/richmenu/validate"
    idempotent = True


class UploadRichMenuImage(LineAction):
    """POST {data_url}/v2/bot/richmenu/{richMenuId}/content from ``image_path``.

    Everything LINE's reference says of the image is checked on the file
    before a byte is sent (exit 2 naming the rule); the file is read once
    and the very bytes checked are sent (at most 1 MB: memory is no
    concern, and a file changed after the check changes nothing). Not resent once it may have reached LINE: a
    second upload is refused ("An image has already been uploaded")."""
    local_paths = ("image_path",)
    method = "POST"
    path = "/v2/bot/richmenu/{richMenuId}/content"
    base_field = "data_url"

    def inspect(self, inputs):
        """(bytes, content type, width, height), or InputError: the file is
        read once and these very bytes are checked, then sent."""
        try:
            data = read_image(inputs["image_path"])
        except ImageError as exc:
            raise self.input_error("image_path", str(exc))
        if len(data) > MAX_IMAGE_BYTES:
            raise self.input_error("image_path", "the image is more than %d bytes; LINE accepts at most 1 MB"
                                   % MAX_IMAGE_BYTES)
        try:
            ctype, width, height = image_info(io.BytesIO(data), len(data))
        except ImageError as exc:
            raise self.input_error("image_path", str(exc))
        problems = size_problems(width, height, "the image")
        if problems:
            raise self.input_error("image_path", "; ".join(m for _, m in problems))
        return data, ctype, width, height

    def _request(self, inputs, data, ctype, width, height, body):
        path = self.path_for(inputs)
        req = self.line_request(path=path, data=body, content_type=ctype)
        req.extra.update(image={"content_type": ctype, "bytes": len(data), "width": width, "height": height})
        return req

    def build(self, inputs):
        # a dry run: the file is checked, the request described without its bytes
        data, ctype, width, height = self.inspect(inputs)
        req = self._request(inputs, data, ctype, width, height, None)
        req.headers["Content-Type"] = ctype
        return [req]

    def execute(self, inputs):
        self.path_for(inputs)  # the ID's format first: nothing opened for a bad one
        data, ctype, width, height = self.inspect(inputs)
        return self.send_all([self._request(inputs, data, ctype, width, height, data)])


class ListRichMenus(LineAction):
    path = "/v2/bot/richmenu/list"


class DeleteRichMenu(LineAction):
    """DELETE /v2/bot/richmenu/{richMenuId}. Deleting twice cannot delete
    anything else, so it is resent like a read, as line_delete_audience and
    line_leave_chat are. A resend after a lost answer may meet 404 (the first
    attempt deleted it): the note says that is likely, not known."""
    method = "DELETE"
    destructive = True
    path = "/v2/bot/richmenu/{richMenuId}"
    idempotent = True
    gone_on_repeat = (404, "there is no such rich menu (any more)", "deleted it")


class SetDefaultRichMenu(LineAction):
    method = "POST"
    destructive = True  # replaces every user's current default
    path = "/v2/bot/user/all/richmenu/{richMenuId}"
    idempotent = True  # setting the same default again changes nothing


class CancelDefaultRichMenu(LineAction):
    method = "DELETE"
    destructive = True
    path = "/v2/bot/user/all/richmenu"
    idempotent = True


class _RichMenuUsers(ChunkedAction, LineAction):
    """One user (``userId``: the path endpoint) or many (``userIds``: the
    bulk endpoint, 500 per request). Linking and unlinking are idempotent
    (the same link twice is one link), so they are retried as reads are."""
    chunk_size = BULK_MAX
    idempotent = True
    bulk_path = None

    def items(self, inputs):
        return inputs["userIds"]

    def bulk_body(self, inputs, chunk):
        raise NotImplementedError

    def chunk_request(self, inputs, index, chunk, total):
        req = self.line_request(body=self.bulk_body(inputs, chunk), path=self.bulk_path)
        req = req.replace(method="POST", extra=dict(req.extra))
        req.extra.update(self.chunk_extra(index, chunk, total))
        return req

    def build(self, inputs):
        if "userIds" in inputs:
            return ChunkedAction.build(self, inputs)
        return [self.line_request(path=self.path_for(inputs))]

    def execute(self, inputs):
        if "userIds" in inputs:
            return ChunkedAction.execute(self, inputs)
        return self.send_all(self.build(inputs))


class LinkRichMenu(_RichMenuUsers):
    method = "POST"
    destructive = True  # replaces the users' current rich menu
    path = "/v2/bot/user/{userId}/richmenu/{richMenuId}"
    bulk_path = "/v2/bot/richmenu/bulk/link"

    def bulk_body(self, inputs, chunk):
        self.path_for(inputs, "/{richMenuId}")  # the engine's ID guard, as for a path
        return {"richMenuId": inputs["richMenuId"], "userIds": chunk}


class UnlinkRichMenu(_RichMenuUsers):
    method = "DELETE"
    destructive = True
    path = "/v2/bot/user/{userId}/richmenu"
    bulk_path = "/v2/bot/richmenu/bulk/unlink"

    def bulk_body(self, inputs, chunk):
        return {"userIds": chunk}
