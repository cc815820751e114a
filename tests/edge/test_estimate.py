"""The input estimate per content block: images by the dimensions in their headers, PDFs by
pages, the rest by bytes; and the admission the edge asks billing for carries it."""

from __future__ import annotations

import base64
import struct
import zlib

import orjson
from aiapi_edge.estimate import (
    IMAGE_MAX_TOKENS,
    PDF_MAX_PAGES,
    PDF_PAGE_TOKENS,
    estimate_input,
    image_size,
    image_tokens,
    pdf_tokens,
)

from .conftest import EdgeEnv


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 2000
    )


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    exif = b"\xff\xe1" + struct.pack(">H", 5002) + b"\x00" * 5000  # a large block before SOF
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + exif + sof + b"\x00" * 100


def test_image_headers_give_their_dimensions_without_decoding_the_image() -> None:
    assert image_size(png(800, 600)) == (800, 600)
    assert image_size(jpeg(1024, 768)) == (1024, 768)
    assert image_size(b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 10) == (320, 200)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8
    vp8x += (639).to_bytes(3, "little") + (479).to_bytes(3, "little")
    assert image_size(vp8x) == (640, 480)
    assert image_size(b"not an image at all") is None


def test_images_cost_by_area_and_unknown_ones_at_the_maximum() -> None:
    assert image_tokens(base64.b64encode(png(750, 100)).decode()) == 100
    assert image_tokens(base64.b64encode(jpeg(1000, 1000)).decode()) == 1334  # ceil(1e6/750)
    assert image_tokens(base64.b64encode(png(8000, 8000)).decode()) == IMAGE_MAX_TOKENS
    assert image_tokens(None) == IMAGE_MAX_TOKENS  # by URL
    assert image_tokens("!!!not base64!!!") == IMAGE_MAX_TOKENS


def test_pdfs_cost_by_pages_bounded_by_their_size() -> None:
    three = b"%PDF-1.7\n" + b"".join(
        f"{i} 0 obj << /Type /Page /Parent 1 0 R >> endobj\n".encode() for i in range(3)
    )
    three += b"1 0 obj << /Type /Pages /Count 3 >> endobj\n"
    assert pdf_tokens(base64.b64encode(three).decode()) == 3 * PDF_PAGE_TOKENS
    forged = b"/Type/Page" * 1000  # 10,000 bytes cannot hold 1,000 pages
    assert pdf_tokens(base64.b64encode(forged).decode()) == (10_000 // 24) * PDF_PAGE_TOKENS
    assert pdf_tokens(None) == PDF_MAX_PAGES * PDF_PAGE_TOKENS


def test_a_body_is_estimated_per_block_and_capped_by_the_context_window() -> None:
    image = base64.b64encode(png(1500, 1000)).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": image},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": image,
                                },
                            }
                        ],
                    },
                ],
            }
        ]
    }
    size = len(orjson.dumps(body))
    text = (size - 2 * len(image)) // 4 + 1
    assert estimate_input(body, size, 200_000) == text + 2 * 2000 + IMAGE_MAX_TOKENS
    assert estimate_input(body, size, 5000) == 5000
    plain = {"messages": [{"role": "user", "content": "hi " * 1000}]}
    assert estimate_input(plain, 4000, 200_000) == 1001  # bytes / 4 + 1, as before


async def test_the_admission_carries_the_per_block_estimate(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    image = base64.b64encode(png(1500, 1000)).decode()
    await sdk.messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.png"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": image},
                    },
                ],
            }
        ],
    )
    [asked] = env.billing.requests
    # Far above the bytes / 4 of the body: the URL image at the maximum, the PNG by its area.
    assert asked.estimated_input_tokens > IMAGE_MAX_TOKENS + 2000


def test_server_tools_are_held_at_their_worst_case() -> None:
    from datetime import UTC, datetime

    from aiapi_edge.estimate import UNBOUNDED_TOOL_USES, server_tools_worst
    from aiapi_shared.catalogue import default_catalogue
    from aiapi_shared.money import parse_usd

    now = datetime(2026, 6, 1, tzinfo=UTC)
    body = {
        "tools": [
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"type": "web_search_20250305", "name": "more_search"},
            {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3},
            {"name": "client_tool", "input_schema": {}},
        ]
    }
    searches = 5 + UNBOUNDED_TOOL_USES
    assert server_tools_worst(body, default_catalogue(), now) == searches * parse_usd("0.01")


async def test_the_admission_carries_the_server_tools_worst_case(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    await sdk.messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        messages=[{"role": "user", "content": "search"}],
    )
    [asked] = env.billing.requests
    assert asked.server_tools_nano == 5 * 10_000_000


def test_a_hold_is_taken_at_the_premiums_the_request_asks_for() -> None:
    from datetime import UTC, datetime

    from aiapi_edge.estimate import hold_premium
    from aiapi_shared.catalogue import default_catalogue

    now = datetime(2026, 6, 1, tzinfo=UTC)
    catalogue = default_catalogue()

    def premium(body: dict[str, object], window: int, tokens: int) -> tuple[int, int]:
        return hold_premium(body, catalogue, now, context_window=window, input_tokens=tokens)

    assert premium({}, 200_000, 150_000) == (10_000, 10_000)
    assert premium({"inference_geo": "us"}, 200_000, 150_000) == (11_000, 11_000)
    assert premium({"inference_geo": "global"}, 200_000, 150_000) == (10_000, 10_000)
    # Over the 200K threshold on a model whose window goes beyond it: 2x input, 1.5x output.
    assert premium({}, 1_000_000, 200_001) == (20_000, 15_000)
    assert premium({}, 1_000_000, 200_000) == (10_000, 10_000)
    assert premium({}, 200_000, 200_001) == (10_000, 10_000)  # a 200K model: never
    assert premium({"inference_geo": "us"}, 1_000_000, 300_000) == (22_000, 16_500)
    # An option allowed unpriced (AIAPI_EDGE_UNPRICED_ALLOW) is held at 1x.
    assert premium({"speed": "fast"}, 200_000, 10) == (10_000, 10_000)


async def test_the_admission_carries_the_premium_and_billing_would_hold_it(env: EdgeEnv) -> None:
    sdk = env.anthropic()
    await sdk.messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=[{"role": "user", "content": "where"}],
        extra_body={"inference_geo": "us"},
    )
    [asked] = env.billing.requests
    assert (asked.input_premium_bps, asked.output_premium_bps) == (11_000, 11_000)
