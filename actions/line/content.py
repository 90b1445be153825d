"""Content users sent: the bytes of an image, video, audio or file message,
and whether a video or audio is ready (developers.line.biz/en/reference/messaging-api/#get-content,
#verify-video-or-audio-preparation-status).

The content is evidence, and LINE allows videos up to 200 MB, so it is never
held whole in memory when saved: the transport's ``stream_to`` hook hands
each chunk to a temporary file in the target's own directory (created with
O_EXCL and O_NOFOLLOW, mode 0600), hashed on the way; only a complete 2xx
body is fsynced and moved onto ``save_to`` with ``os.replace`` (atomic), so a
reader never sees half a file and a cut download leaves nothing behind. The
target is checked before anything is sent: never a directory, never a
symbolic link (an attacker's link would redirect the write), its directory
must exist and take a new file, and an existing file is replaced only with
``overwrite`` (keeping its mode). What is saved is capped at ``MAX_SAVE``
(256 MiB) and asked for with ``Accept-Encoding: identity``, so neither an
endless body nor a compressed one inflated on the way can fill the disk, and
size and sha256 are of LINE's bytes. The transport's hook sees chunks, not
headers, so a declared Content-Length over the cap is stopped at the cap,
not before the first byte. Without ``save_to`` the content comes back base64-encoded, up to
10 MiB; past that the download stops there (memory never holds more) and
the failure says to use ``save_to``.
"""
import base64
import hashlib
import os
import stat
import tempfile

from .base import REQUEST_ID_HEADER, LineAction

#: the most returned inline (base64) -- the transport's bound for any body
MAX_INLINE = 10 * 1024 * 1024
#: the most written to ``save_to``: LINE accepts videos up to 200 MB
#: (developers.line.biz/en/reference/messaging-api/#video-message), the
#: largest content a user can send, so 256 MiB leaves room and still stops
#: an endless or inflated body from filling the disk.
MAX_SAVE = 256 * 1024 * 1024


class _TooLarge(Exception):
    pass


class _Sink:
    """Receives the body's chunks: into a file (``fd``) or a bounded buffer."""

    def __init__(self, fd=None):
        self.fd = fd
        self.buffer = bytearray() if fd is None else None
        self.sha = hashlib.sha256()
        self.size = 0
        self.over = False

    def __call__(self, chunk):
        if self.fd is None and self.size + len(chunk) > MAX_INLINE:
            raise _TooLarge("content larger than %d MiB" % (MAX_INLINE // (1024 * 1024)))
        if self.fd is not None and self.size + len(chunk) > MAX_SAVE:
            self.over = True
            raise _TooLarge("content larger than %d MiB" % (MAX_SAVE // (1024 * 1024)))
        self.sha.update(chunk)
        self.size += len(chunk)
        if self.fd is None:
            self.buffer += chunk
        else:
            view = memoryview(chunk)
            while view:
                written = os.write(self.fd, view)
                view = view[written:]


class GetMessageContent(LineAction):
    path = "/v2/bot/message/{messageId}/content"
    base_field = "data_url"
    local_paths = ("save_to",)

    def target(self, inputs):
        """The absolute path to write, checked; None without ``save_to``.
        InputError (nothing sent) for a directory, a symbolic link, anything
        but a regular file, or a missing directory."""
        save_to = inputs.get("save_to")
        if save_to is None:
            return None
        if save_to.endswith(("/", os.sep)) or os.path.basename(save_to) in ("", ".", ".."):
            raise self.input_error("save_to", "must name a file, not a directory")
        path = os.path.abspath(save_to)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise self.input_error("save_to", "cannot be checked: %s" % (exc.strerror or type(exc).__name__))
        if info is not None:
            if stat.S_ISREG(info.st_mode) and not inputs.get("overwrite"):
                raise self.input_error("save_to", "exists; set overwrite to true to replace it")
            if stat.S_ISLNK(info.st_mode):
                raise self.input_error("save_to", "is a symbolic link; the content is never written through one")
            if stat.S_ISDIR(info.st_mode):
                raise self.input_error("save_to", "is a directory; name a file in it")
            if not stat.S_ISREG(info.st_mode):
                raise self.input_error("save_to", "exists and is not a regular file")
        if not os.path.isdir(os.path.dirname(path)):
            raise self.input_error("save_to", "its directory %s does not exist" % os.path.dirname(path))
        return path

    def build(self, inputs):
        self.target(inputs)
        return super().build(inputs)

    def execute(self, inputs):
        path = self.target(inputs)
        (request,) = super().build(inputs)
        # what LINE sent, not a decoded version: the size and sha256 are of its bytes
        request.headers["Accept-Encoding"] = "identity"
        if path is None:
            return self._inline(request)
        # the temporary file first: a directory that cannot take it (read-only,
        # /proc, /sys) is refused before anything is sent
        try:
            fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part",
                                        dir=os.path.dirname(path))
        except OSError as exc:
            raise self.input_error("save_to", "cannot create a file in %s: %s"
                                   % (os.path.dirname(path), exc.strerror or type(exc).__name__))
        moved = False
        try:
            sink = _Sink(fd)
            request.stream_to = sink
            result = self.send_one(request)
            if result["ok"]:
                os.fsync(fd)
                problem = self._still_writable(path, inputs.get("overwrite"))
                if problem:
                    os.close(fd)
                    fd = None
                    result.update(ok=False, note="not saved: save_to %s (it changed during the download)" % problem)
                else:
                    try:  # replacing (overwrite): the file keeps the mode it had
                        os.fchmod(fd, stat.S_IMODE(os.lstat(path).st_mode))
                    except FileNotFoundError:  # nothing to replace: a new file stays 0600
                        pass
                    os.close(fd)
                    fd = None
                    try:
                        os.replace(temp, path)
                    except OSError as exc:
                        result.update(ok=False, note="downloaded in full, but the content was not saved: moving it "
                                      "onto save_to failed (%s); nothing was written there"
                                      % (exc.strerror or type(exc).__name__))
                    else:
                        moved = True
                        _fsync_dir(os.path.dirname(path))
                        result.update(self._describe(result, sink), path=path)
            elif sink.over:
                result["error"] = result["note"] = (
                    "the content is larger than %d MiB, the most saved (LINE's largest content, a video, is at "
                    "most 200 MB); the download was stopped and the partial file of %d bytes removed; nothing "
                    "was saved" % (MAX_SAVE // (1024 * 1024), sink.size))
            elif sink.size:
                result["note"] = ("%s; nothing was saved (the partial download of %d bytes was removed)"
                                  % (result.get("note") or result.get("error") or "download failed", sink.size))
        finally:
            if fd is not None:
                os.close(fd)
            if not moved:
                try:
                    os.unlink(temp)
                except FileNotFoundError:
                    pass
        return [result], result["ok"]

    def _inline(self, request):
        sink = _Sink()
        request.stream_to = sink
        result = self.send_one(request)
        if result["ok"]:
            result.update(self._describe(result, sink),
                          content_base64=base64.b64encode(bytes(sink.buffer)).decode("ascii"))
        elif 200 <= result["status_code"] < 300 and "_TooLarge" in (result.get("error") or ""):
            result["error"] = result["note"] = (
                "the content is larger than %d MiB, the most returned inline: give save_to (a file path) to "
                "stream it to a file; the download was stopped" % (MAX_INLINE // (1024 * 1024)))
        sink.buffer = None
        return [result], result["ok"]

    @staticmethod
    def _still_writable(path, overwrite=False):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISREG(info.st_mode) and not overwrite:
            return "now exists (and overwrite is not set)"
        if stat.S_ISLNK(info.st_mode):
            return "is now a symbolic link"
        if not stat.S_ISREG(info.st_mode):
            return "is now a directory or special file"
        return None

    @staticmethod
    def _describe(result, sink):
        headers = {k.lower(): v for k, v in result["response_headers"].items()}
        out = {"content_type": headers.get("content-type", "application/octet-stream"),
               "size": sink.size, "sha256": sink.sha.hexdigest()}
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # asked for identity; a server that still compresses has its body decoded on the way
            out["note"] = ("the answer came with Content-Encoding: %s although identity was asked for: size and "
                           "sha256 are of the decoded content" % encoding)
        return out

    def judge(self, request, result):
        status = result["status_code"]
        if 200 <= status < 300:  # a binary answer: no JSON to expect
            headers = {k.lower(): v for k, v in result["response_headers"].items()}
            if REQUEST_ID_HEADER in headers:
                result["request_id"] = headers[REQUEST_ID_HEADER]
            return "error" not in result
        return super().judge(request, result)


def _fsync_dir(path):
    """Make the rename durable (POSIX); a platform without directory fds skips it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class GetContentTranscoding(LineAction):
    path = "/v2/bot/message/{messageId}/content/transcoding"
    base_field = "data_url"
