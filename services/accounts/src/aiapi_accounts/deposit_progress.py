"""How a deposit in flight is described to its owner (pure)."""

from __future__ import annotations

from aiapi_shared.payments_api import Deposit


def progress(deposit: Deposit) -> str:
    n, needed = deposit.confirmations, deposit.confirmations_required
    match deposit.state:
        case "detected" if n == 0:
            return "detected, waiting for its first confirmation"
        case "detected" if needed is not None:
            return f"confirming {min(n, needed)}/{needed}"
        case "detected":
            return f"confirming ({n} so far; credits once its block is finalized)"
        case "confirmed":
            return "confirmed, being credited"
        case "credited":
            return "credited"
        case "below_minimum":
            return "below the minimum deposit: recorded, not credited"
        case "orphaned":
            return "orphaned: its block left the chain (reorganisation); it may come back"
        case "reversed":
            return "reversed: removed from the chain after it was credited"
    return deposit.state


def explorer_url(templates: dict[str, str], network: str, tx_hash: str) -> str | None:
    template = templates.get(network)
    return template.replace("{tx}", tx_hash) if template else None
