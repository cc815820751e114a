"""What the process checks before it does anything: no secret in any setting (I/O: it reads
the environment and the secret files), then settings that parse.

Both run before a connection is opened. Their messages name settings, never values: the
secrets guard never repeats what it found, and a settings parse error is reported by field
and error type only (pydantic's own message would echo the input).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aiapi_shared.lifecycle import StartupRefused
from aiapi_shared.runner import load_settings

from aiapi_payments.config import PaymentsConfig, build_config
from aiapi_payments.secrets_guard import SecretInSettings, refuse_secrets
from aiapi_payments.settings import PaymentsSettings

_MAX_SECRET_FILE = 64 * 1024


def configured_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Every `AIAPI_*` variable, and every file of `AIAPI_SECRETS_DIR`, by name."""
    values = {name: value for name, value in environ.items() if name.startswith("AIAPI_")}
    directory = environ.get("AIAPI_SECRETS_DIR")
    if directory and Path(directory).is_dir():
        for path in sorted(Path(directory).iterdir()):
            if path.is_file() and path.stat().st_size <= _MAX_SECRET_FILE:
                values[f"AIAPI_SECRETS_DIR/{path.name}"] = path.read_text("utf-8", "replace")
    return values


def load(environ: Mapping[str, str] | None = None) -> tuple[PaymentsSettings, PaymentsConfig]:
    """Settings and validated configuration; raises StartupRefused."""
    try:
        refuse_secrets(configured_values(os.environ if environ is None else environ))
    except SecretInSettings as error:
        raise StartupRefused(str(error)) from None
    settings = load_settings(PaymentsSettings)
    return settings, build_config(settings)


def secret_values(settings: PaymentsSettings, config: PaymentsConfig | None = None) -> list[str]:
    """What must never appear in a log line, whoever writes it (web3 logs its node's URL; a
    traceback may quote it): the node URLs, which often carry a provider's API key (every
    network's, AIAPI_EVM_CHAINS' and TRON's included)."""
    urls = [settings.eth_rpc_url, settings.tron_rpc_url, settings.btc_esplora_url]
    urls += [chain.rpc_url for chain in config.evm] if config is not None else []
    return sorted({url.rstrip("/") for url in urls if url})
