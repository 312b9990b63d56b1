"""Multipart uploads read with a bound: a body past it is refused as it streams, never spooled whole.

Starlette's ``request.form()`` writes every file part to a temporary file with no limit; a bound on
``Content-Length`` alone misses a chunked upload, which has none. Here the body is counted while it
arrives, so a client streaming gigabytes costs the server at most the bound in temporary space.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from model_loader.errors import InvalidInputError

from ..outcomes import BodyTooLargeError
from .routes import DRAIN_LIMIT_BYTES

# Room beside the file for the form's other fields and its part boundaries.
FORM_SLACK_BYTES = 64 * 1024


async def read_form(request: Request, max_file_bytes: int, too_large: Callable[[int, bool], str], usage: str,
                    max_files: int = 1, max_fields: int = 16) -> FormData:
    """The request's multipart form. ``too_large(size, at_least)`` words the 413 for a body over
    ``max_file_bytes`` (plus slack); ``usage`` says how to send the form, for a body that is not one."""
    if not is_form(request):
        content_type = request.headers.get("content-type", "")
        sent = f"sent as {content_type.split(';')[0]!r}" if content_type else "sent without a Content-Type"
        raise InvalidInputError(f"请求不是表单 · the request is {sent}, not multipart/form-data: {usage}")
    bound = max_file_bytes + FORM_SLACK_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > bound:
        raise BodyTooLargeError(too_large(int(declared), False), drained=False)

    async def counted() -> AsyncGenerator[bytes, None]:
        size = 0
        stream = request.stream()
        async for chunk in stream:
            size += len(chunk)
            if size > bound:
                message = too_large(size, True)
                # Read on and throw away, as the JSON routes do, so that a client still sending gets the
                # 413 rather than a reset connection; past DRAIN_LIMIT_BYTES, answer and close.
                async for rest in stream:
                    size += len(rest)
                    if size > DRAIN_LIMIT_BYTES:
                        raise BodyTooLargeError(message, drained=False)
                raise BodyTooLargeError(message)
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=max_files, max_fields=max_fields)
    try:
        return await parser.parse()  # closes its temporary files when reading fails
    except MultiPartException as exc:
        raise InvalidInputError(f"表单无法读取 · the form could not be read ({exc.message}): {usage}") from None


def is_form(request: Request) -> bool:
    """Whether the body is a multipart form (media types are case-insensitive)."""
    return request.headers.get("content-type", "").strip().lower().startswith("multipart/form-data")


def form_file(form: FormData, field: str, usage: str) -> UploadFile:
    """The file sent as ``field``; a clear 422 when it is missing or came as a plain text field."""
    upload = form.get(field)
    if isinstance(upload, UploadFile):
        return upload
    if upload is None:
        raise InvalidInputError(f"缺少文件 · `{field}` is missing: {usage}")
    raise InvalidInputError(
        f"不是文件 · `{field}` came as a text field, not a file (its part has no filename): {usage}"
    )
