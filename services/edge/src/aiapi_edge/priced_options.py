"""Which parts of a request the catalogue cannot price (pure).

Every tool, beta and option that makes the upstream bill more than tokens must have a price in
the catalogue (``meters``), or the request is refused with a 400 that names it before it reaches
the upstream: otherwise a customer could spend the operator's money without paying for it. The
operator prices it in the catalogue, or allows it unpriced (``AIAPI_EDGE_UNPRICED_ALLOW``) when
they know it costs nothing beyond tokens (an allowed option the upstream then reports in the
usage still needs a price before billing settles it).

- A tool with a ``type`` is a server tool unless it is one of the client tools (``custom``,
  ``bash``, ``text_editor``, ``computer``, ``memory``), which the client runs and which cost
  only their tokens. ``web_search_*`` and ``web_fetch_*`` are priced by the ``web_search_requests``
  and ``web_fetch_requests`` meters; any other server tool (``code_execution_*``, the tool search
  tools, ...) is named by its type without the date, e.g. ``code_execution``.
- ``container`` (code execution's container) is named ``code_execution``.
- ``service_tier: "auto"`` may be served at the priority tier: it needs ``service_tier:priority``.
- ``inference_geo: X`` needs ``inference_geo:X``; ``speed: X`` needs ``speed:X``.
- The ``anthropic-beta`` values ``context-1m-*`` need the ``long_context`` meter, and
  ``fast-mode-*`` needs ``speed:fast``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aiapi_shared.catalogue import Catalogue

CLIENT_TOOLS = frozenset({"custom", "bash", "text_editor", "computer", "memory"})
TOOL_METERS = {"web_search": "web_search_requests", "web_fetch": "web_fetch_requests"}
_DATE_SUFFIX = re.compile(r"_\d{8}$")
_BETA_METERS = (("context-1m-", "long_context"), ("fast-mode-", "speed:fast"))
# Cheap byte test before parsing a body the route did not parse: none of these, nothing to price.
MARKERS = (b'"tools"', b'"service_tier"', b'"inference_geo"', b'"speed"', b'"container"')


def tool_family(tool_type: str) -> str:
    """``web_search_20250305`` -> ``web_search``."""
    return _DATE_SUFFIX.sub("", tool_type)


def requested_options(body: Mapping[str, Any]) -> dict[str, str]:
    """The option meters' values the request may be billed at: ``inference_geo`` and ``speed``
    as asked, ``service_tier: "auto"`` at ``priority`` (the upstream may serve it there)."""
    options: dict[str, str] = {}
    if body.get("service_tier") == "auto":
        options["service_tier"] = "priority"
    for option in ("inference_geo", "speed"):
        value = body.get(option)
        if isinstance(value, str):
            options[option] = value
    return options


def needed_meters(body: Mapping[str, Any], betas: Iterable[str]) -> list[str]:
    """Every meter the request needs a price for, by the name the refusal gives."""
    needed: list[str] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if isinstance(kind, str):
            family = tool_family(kind)
            if family not in CLIENT_TOOLS:
                needed.append(TOOL_METERS.get(family, family))
    if body.get("container") is not None:
        needed.append("code_execution")
    options = requested_options(body)
    needed.extend(f"{option}:{value}" for option, value in options.items() if value != "standard")
    for beta in betas:
        needed.extend(meter for prefix, meter in _BETA_METERS if beta.startswith(prefix))
    return needed


def unpriced(
    body: Mapping[str, Any],
    betas: Iterable[str],
    catalogue: Catalogue,
    moment: datetime,
    allowed: frozenset[str],
) -> str | None:
    """The first thing the request asks for that is neither priced at ``moment`` nor allowed."""
    for meter in needed_meters(body, betas):
        if meter not in allowed and catalogue.meter_at(meter, moment) is None:
            return meter
    return None


def refusal(meter: str) -> str:
    return f"{meter[:100]} is not available through this gateway: it has no price in the catalogue"
