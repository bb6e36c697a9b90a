"""What a request body must be before anything reads it, one rule for every route that takes one,
the hot lanes included: JSON sent as `application/json` (or `application/<anything>+json`), in
UTF-8, without a byte order mark.

Every router of the API is made with `route_class=JsonBodyRoute`, whose handler checks the body
before FastAPI (or a hot lane's own parser) reads it, so each rule has one place and one answer:

- a body of a media type the route does not take, or of none: 415 `unsupported_media_type`,
  saying what to send;
- a JSON body that starts with a byte order mark, or is not UTF-8: 400 `malformed_json` (RFC 8259
  allows neither on the wire; Python's `json.loads` would take both, pydantic's parser neither);
- then the route's own parsing: 400 `malformed_json` for what is not JSON, 422 for what does not
  fit the schema.

The media types a route takes are those its OpenAPI `requestBody` lists: JSON for a body
parameter or a hot lane (`http.work.json_body_schema`). A route that also takes another one lists
it there too and reads that body itself; the sign-in lists OAuth2's password grant form
(`application/x-www-form-urlencoded`), which `/docs`' Authorize sends. Such a body is let through
unread.

An empty body is left to the route (a required body then answers 422 "Field required"). Routes
that take no body are not checked: what a client sends them is never read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response, params
from fastapi.routing import APIRoute

from tenantry.kit.errors import MalformedJson, UnsupportedMediaType

JSON_MEDIA_TYPE: Final = "application/json"

# The answers this layer (with the body limit and the route's own validation) can send on a route
# that takes a body, by status, for the OpenAPI document: every such route lists them
# (`body_problems`).
BODY_PROBLEMS: Final[dict[int, str]] = {
    400: "`malformed_json`: the body is not JSON, not UTF-8, or starts with a byte order mark",
    413: "`payload_too_large`: the body is larger than the server takes",
    415: "`unsupported_media_type`: the body is not sent as `application/json` (or another media "
    "type the operation lists)",
    422: "`validation_error`: a field is missing, unknown, null where it may not be, of the wrong "
    "type or out of range",
}

UTF8_BOM: Final = b"\xef\xbb\xbf"
_METHODS_WITH_BODIES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


FORM_MEDIA_TYPES: Final = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_types_taken(route: APIRoute) -> tuple[str, ...]:
    """The media types of the bodies `route` reads (none: it takes no body)."""
    documented = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    if documented:
        return tuple(str(media_type).lower() for media_type in documented)
    if route.body_field is None:
        return ()
    if isinstance(route.body_field.field_info, params.Form):  # FastAPI's form parameters
        return FORM_MEDIA_TYPES
    return (JSON_MEDIA_TYPE,)


def takes_body(route: APIRoute) -> bool:
    return bool(media_types_taken(route))


def body_problems(route: APIRoute) -> dict[int, str]:
    """The statuses (with their codes) that the body layer can answer on `route`."""
    return dict(BODY_PROBLEMS) if takes_body(route) else {}


def is_json_media_type(media_type: str) -> bool:
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _media_type(header: str) -> tuple[str, str | None]:
    """The media type of a Content-Type header, lowercased, and its charset if it names one."""
    media_type, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media_type.strip().lower(), charset


def _announces_body(request: Request) -> bool:
    """Whether the request says it has a body, read from its headers alone."""
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _what_to_send(taken: tuple[str, ...]) -> str:
    kinds = [f"`Content-Type: {m}`" for m in taken if not is_json_media_type(m)]
    if any(is_json_media_type(m) for m in taken):
        kinds.insert(0, "JSON with `Content-Type: application/json`")
    return ", or ".join(kinds)


def refusal(content_type: str | None, taken: tuple[str, ...]) -> str | None:
    """Why a body of this Content-Type is refused by a route taking `taken`, or None when the
    route reads it: JSON in UTF-8 if it takes JSON, or one of its other media types."""
    if content_type is None:
        return f"The request body has no Content-Type; send it as {_what_to_send(taken)}"
    media_type, charset = _media_type(content_type)
    if media_type in taken:
        pass
    elif not (is_json_media_type(media_type) and JSON_MEDIA_TYPE in taken):
        shown = media_type or "of no media type"
        return f"The request body is {shown}; send it as {_what_to_send(taken)}"
    if is_json_media_type(media_type) and charset not in (None, "utf-8", "utf8"):
        return f"The request body is in {charset}; send JSON in UTF-8"
    return None


def check_json_text(body: bytes) -> None:
    """Refuse a JSON body that starts with a byte order mark or is not UTF-8 (400)."""
    if body.startswith(UTF8_BOM):
        raise MalformedJson(
            "The request body starts with a UTF-8 byte order mark (EF BB BF); send the JSON "
            "text alone"
        )
    if not body.isascii():  # the usual body, checked at memory speed
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(
                f"The request body is not valid UTF-8 (byte {exc.start}); JSON is sent in UTF-8"
            ) from None


async def check_body(request: Request, taken: tuple[str, ...]) -> None:
    """Refuse a body the route does not read (415) or JSON it cannot (400); see the module. The
    body is read only when it is JSON, which the route reads next anyway."""
    content_type = request.headers.get("content-type")
    media_type = _media_type(content_type)[0] if content_type is not None else ""
    if not is_json_media_type(media_type):
        if _announces_body(request):  # a body of another type is refused (or let through) unread
            why = refusal(content_type, taken)
            if why is not None:
                raise UnsupportedMediaType(why)
        return
    body = await request.body()
    if not body:
        return
    why = refusal(content_type, taken)
    if why is not None:
        raise UnsupportedMediaType(why)
    check_json_text(body)


class JsonBodyRoute(APIRoute):
    """A route whose body, when it takes one, is checked (`check_body`) before it is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        taken = media_types_taken(self)
        if not taken:
            return handler

        async def checked(request: Request) -> Response:
            if request.method in _METHODS_WITH_BODIES:
                await check_body(request, taken)
            return await handler(request)

        return checked
