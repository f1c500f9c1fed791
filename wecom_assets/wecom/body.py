"""Reading and decoding an answer's body, bounded in time and size.

A server (or anything posing as one behind ``WECOM_API_BASE_URL``) decides how much it sends,
how fast, and how well it compresses: a 1 MB gzip bomb inflates to 1 GB. The body is therefore
streamed in chunks, counted before and after decompression, and abandoned at the request's
deadline. Decoding then tells apart what a retry may fix (a cut-off body) from what it cannot
(JSON in another encoding, absurd nesting).
"""

from __future__ import annotations

import http.client
import json
import zlib
from typing import Any

import urllib3

from wecom_assets.wecom.deadline import Deadline
from wecom_assets.wecom.errors import TransientFailure, WeComResponseError
from wecom_assets.wecom.redact import escape_controls

CHUNK_BYTES = 64 * 1024
# gzip (and x-gzip, its old alias) and zlib-wrapped deflate are what the client asks for.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING = "gzip, deflate"


class _Inflater:
    """Decompresses a gzip/deflate stream without ever producing more than a given size."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._engine = zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes | None:
        """Return the output ``data`` yields, or None if it would exceed ``room`` bytes."""
        out = bytearray()
        while data:
            chunk = self._engine.decompress(data, room - len(out) + 1)
            out += chunk
            if len(out) > room:
                return None
            data = self._engine.unconsumed_tail
            if self._engine.eof:
                # gzip allows several members back to back.
                data = self._engine.unused_data + data
                self._engine = zlib.decompressobj(self._wbits)
        return bytes(out)


def read_body(raw: urllib3.BaseHTTPResponse, path: str, limit: int, deadline: Deadline) -> bytes:
    """Read and decompress the whole body, within ``limit`` bytes and the deadline.

    Args:
        raw: The urllib3 response, body not yet read.
        path: API path, for messages.
        limit: Largest body, compressed and decompressed alike.
        deadline: The request's deadline.

    Returns:
        The decompressed body.

    Raises:
        TransientFailure: The connection broke or the deadline passed before the end.
        WeComResponseError: The body is larger than ``limit`` (or would inflate beyond it),
            or uses a compression that was not asked for.
    """
    encoding = raw.headers.get("Content-Encoding", "identity").strip().lower()
    inflater = None
    if encoding not in ("", "identity"):
        wbits = _WBITS.get(encoding)
        if wbits is None:
            raise WeComResponseError(
                f"WeCom {path} answered with Content-Encoding {escape_controls(encoding[:40])!r}, "
                f"which the client did not ask for ({ACCEPT_ENCODING})",
                path=path,
            )
        inflater = _Inflater(wbits)
    declared = raw.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(path, limit, f"Content-Length {declared}")
    received = 0
    body = bytearray()
    while True:
        try:
            chunk = raw.read(CHUNK_BYTES, decode_content=False)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise TransientFailure(_interrupted(deadline, type(exc).__name__)) from None
        if deadline.expired:
            raise TransientFailure(_interrupted(deadline, "deadline passed"))
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise _too_large(path, limit, "the body")
        if inflater is None:
            body += chunk
            continue
        try:
            inflated = inflater.feed(chunk, limit - len(body))
        except zlib.error:
            raise WeComResponseError(
                f"WeCom {path} answered a body that is not valid {encoding}", path=path
            ) from None
        if inflated is None:
            raise _too_large(path, limit, f"the body decompressed ({encoding})")
        body += inflated
    return bytes(body)


def _interrupted(deadline: Deadline, cause: str) -> str:
    if deadline.expired:
        return f"no complete answer within {deadline.seconds:.3g} s"
    return f"the body broke off ({cause})"


def _too_large(path: str, limit: int, what: str) -> WeComResponseError:
    return WeComResponseError(
        f"WeCom {path} answered more than {limit} bytes ({what}): refusing it. If an answer this "
        "large is genuine, raise max_response_bytes",
        path=path,
    )


def decode_json(content: bytes, path: str, content_type: str) -> dict[str, Any]:
    """Decode a complete body as a UTF-8 JSON object.

    Args:
        content: The body.
        path: API path, for messages.
        content_type: The answer's Content-Type, for messages.

    Returns:
        The JSON object.

    Raises:
        TransientFailure: A retry may help: JSON cut off (mid-character included), or a body
            that is not JSON at all (a gateway's error page).
        WeComResponseError: The body is JSON in another encoding than UTF-8, JSON that cannot
            be decoded (nesting or numbers beyond what Python parses), or JSON that is not an
            object: the same request would get the same answer.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        shape = _shape(content, content_type)
        if exc.reason == "unexpected end of data":
            raise TransientFailure(f"truncated JSON ({shape})") from None
        if not _looks_like_json(content):
            raise TransientFailure(f"a non-JSON body ({shape})") from None
        raise WeComResponseError(
            f"WeCom {path} answered JSON that is not UTF-8 JSON (byte 0x{content[exc.start]:02x} "
            f"at offset {exc.start}; {shape}); a proxy may be re-encoding it",
            path=path,
        ) from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        kind = "truncated JSON" if _looks_like_json(content) else "a non-JSON body"
        raise TransientFailure(f"{kind} ({_shape(content, content_type)})") from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number too long"
        raise WeComResponseError(
            f"WeCom {path} answered JSON that cannot be decoded ({reason}; "
            f"{_shape(content, content_type)})",
            path=path,
        ) from None
    if not isinstance(payload, dict):
        raise WeComResponseError(
            f"WeCom {path} answered JSON {type(payload).__name__}, not an object", path=path
        )
    return payload


# Only a failure needs these: stripping copies the whole body, which a 1 MB answer feels.
def _looks_like_json(content: bytes) -> bool:
    return content.lstrip()[:1] in (b"{", b"[")


def _shape(content: bytes, content_type: str) -> str:
    return f"{len(content)} bytes, content-type {escape_controls(content_type[:80]) or 'unknown'}"
