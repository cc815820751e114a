"""The input a request may be billed for, estimated per content block before it goes upstream
(pure). Billing holds the estimate and ``max_tokens`` at the plan's price, so an estimate that
under-counts lets a request spend more than its hold.

- Text, tool definitions, tool results and text documents: about four bytes of JSON a token (the
  body's bytes, less the base64 of the images and PDFs below), as before.
- An image sent as base64: its width and height, read from the first bytes of the file (PNG,
  GIF, WebP and JPEG headers, without decoding the image), priced ``w x h / 750`` tokens, at most
  ``IMAGE_MAX_TOKENS``. An image by URL or file id, or one whose header cannot be read, counts
  ``IMAGE_MAX_TOKENS``.
- A PDF sent as base64: its pages (``/Type /Page`` objects; never more than its bytes allow, and
  at most ``PDF_MAX_PAGES``) at ``PDF_PAGE_TOKENS`` each. A PDF by URL or file id counts
  ``PDF_MAX_PAGES`` pages.
- The total is at most the model's context window: the upstream reads no more.

Beside the input, the server tools the request allows are held at their worst case
(:func:`server_tools_worst`): ``max_uses`` of each priced tool at its price.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from aiapi_shared.catalogue import Catalogue
from aiapi_shared.pricing import premium_bps

from aiapi_edge.peek import parsed_when
from aiapi_edge.priced_options import TOOL_METERS, requested_options, tool_family

IMAGE_MAX_TOKENS = 4_784  # the largest image a sold model reads (2,576 px long edge)
TOKENS_PER_PIXEL_DIVISOR = 750  # Anthropic: tokens = width x height / 750
PDF_PAGE_TOKENS = 3_000 + 1_600  # a page's text (up to 3,000) and the page as an image
PDF_MAX_PAGES = 600
PDF_MIN_PAGE_BYTES = 24  # the shortest page object ("1 0 obj<</Type/Page>>endobj" is 27)
_HEADER_CHARS = 87_384  # base64 characters of the first 64 KiB (a JPEG's EXIF comes first)
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
# Bodies that may hold an image, a document, a priced server tool or a priced option are parsed;
# others are not.
MARKERS = (
    b'"image"',
    b'"document"',
    b'"web_search_',
    b'"web_fetch_',
    b'"inference_geo"',
    b'"speed"',
    b'"service_tier"',
)
# A server tool without max_uses is held for this many uses (more are the request's excess).
UNBOUNDED_TOOL_USES = 10


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        return width, 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first bytes of a PNG, GIF, WebP or JPEG file, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def image_tokens(data: str | None) -> int:
    """Tokens of an image block's base64 ``data`` (None: by URL or file)."""
    if not data:
        return IMAGE_MAX_TOKENS
    prefix = data[:_HEADER_CHARS]
    try:
        head = base64.b64decode(prefix[: len(prefix) - len(prefix) % 4])
    except (binascii.Error, ValueError):
        return IMAGE_MAX_TOKENS
    size = image_size(head)
    if size is None or size[0] <= 0 or size[1] <= 0:
        return IMAGE_MAX_TOKENS
    return min(IMAGE_MAX_TOKENS, -(-size[0] * size[1] // TOKENS_PER_PIXEL_DIVISOR))


def pdf_tokens(data: str | None) -> int:
    """Tokens of a PDF document block's base64 ``data`` (None: by URL or file)."""
    if not data:
        return PDF_MAX_PAGES * PDF_PAGE_TOKENS
    try:
        document = base64.b64decode(data)
    except (binascii.Error, ValueError):
        return PDF_MAX_PAGES * PDF_PAGE_TOKENS
    pages = len(_PAGE.findall(document))
    bound = max(1, len(document) // PDF_MIN_PAGE_BYTES)
    return max(1, min(pages, bound, PDF_MAX_PAGES)) * PDF_PAGE_TOKENS


def _blocks(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every content block, however deep (tool results hold blocks of their own)."""
    if isinstance(value, Mapping):
        if isinstance(value.get("type"), str):
            yield value
        for inner in value.values():
            if isinstance(inner, (list, Mapping)):
                yield from _blocks(inner)
    elif isinstance(value, list):
        for item in value:
            yield from _blocks(item)


def server_tool_prices(catalogue: Catalogue, moment: datetime) -> dict[str, int]:
    """The list price of one request of each server-tool meter priced at ``moment``."""
    prices: dict[str, int] = {}
    for meter in TOOL_METERS.values():
        point = catalogue.meter_at(meter, moment)
        if point is not None:
            prices[meter] = int(point.usd_per_unit)
    return prices


def server_tools_worst(body: Mapping[str, Any], catalogue: Catalogue, moment: datetime) -> int:
    """The list price of every use the request's priced server tools allow (``max_uses``, else
    ``UNBOUNDED_TOOL_USES``), at the catalogue's prices in force at ``moment``."""
    tools = body.get("tools")
    worst = 0
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        meter = TOOL_METERS.get(tool_family(kind)) if isinstance(kind, str) else None
        point = catalogue.meter_at(meter, moment) if meter is not None else None
        if point is None:
            continue
        uses = tool.get("max_uses")
        bounded = isinstance(uses, int) and not isinstance(uses, bool) and uses > 0
        worst += (uses if bounded else UNBOUNDED_TOOL_USES) * int(point.usd_per_unit)
    return worst


def hold_premium(
    body: Mapping[str, Any] | None,
    catalogue: Catalogue,
    moment: datetime,
    *,
    context_window: int,
    input_tokens: int,
) -> tuple[int, int]:
    """The input and output factors (bps) a hold is taken at: the long-context premium when the
    estimated input is over the threshold on a model whose window goes beyond it, times the
    options the request asks for (``inference_geo``, ``speed``, ``service_tier: "auto"``)."""
    return premium_bps(
        catalogue,
        moment,
        context_window=context_window,
        input_tokens=input_tokens,
        options={} if body is None else requested_options(body),
    )


def media_body(raw: bytes, parsed: Mapping[str, Any] | None = None) -> Mapping[str, Any] | None:
    """The body parsed, only when its bytes may hold an image or a document (else None: the
    byte estimate is the same and parsing would only cost time); ``parsed``: already parsed."""
    return parsed_when(raw, MARKERS, parsed)


def estimate_input(body: Mapping[str, Any], body_size: int, context_window: int) -> int:
    """The input tokens ``body`` may be billed for (see the module's rules)."""
    payload_chars = 0
    media_tokens = 0
    for block in _blocks([body.get("system"), body.get("messages")]):
        kind = block.get("type")
        if kind not in ("image", "document"):
            continue
        source = block.get("source")
        source = source if isinstance(source, Mapping) else {}
        data = source.get("data") if source.get("type") == "base64" else None
        data = data if isinstance(data, str) else None
        if kind == "image":
            media_tokens += image_tokens(data)
        elif source.get("type") in ("base64", "url", "file"):
            if data is not None and source.get("media_type") != "application/pdf":
                continue  # a text document: counted by its bytes
            media_tokens += pdf_tokens(data)
        else:
            continue
        payload_chars += len(data or "")
    text = max(0, body_size - payload_chars) // 4 + 1
    return min(text + media_tokens, max(context_window, 1))
