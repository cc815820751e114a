"""The sweep plan: which deposit addresses hold what, which need gas, and an unsigned
description of the transfers that would gather the funds at the operator's destinations. Pure.

Watch-only means the service never moves funds and cannot know what was spent: the balances
come from the chain nodes at the moment of the plan (`balances.py`), the addresses from the
deposits the service credited. The operator signs the described transfers offline with the
wallet that holds the seed, deriving each key from its `derivation_path`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiapi_payments.addresses import (
    BitcoinNetwork,
    InvalidAddress,
    decode_segwit_v0_address,
    is_checksum_valid,
    to_checksum_address,
    tron_to_hex,
)
from aiapi_payments.keys import ExtendedPublicKey
from aiapi_payments.model import KeyChain
from aiapi_payments.policy import format_units

HARDENED = 0x80000000
# BIP44/BIP84 purpose and coin of each account key (the xpub itself does not say).
_PURPOSE_COIN = {KeyChain.EVM: (44, 60), KeyChain.TRON: (44, 195)}


class SweepError(ValueError):
    """A destination the plan cannot use; the message names it."""


@dataclass(frozen=True)
class Holding:
    """One asset's balance at one deposit address, as the node reported it just now."""

    network: str
    keychain: KeyChain
    asset: str  # USDT, USDC, ETH, BTC
    contract: str | None  # the token contract as the network's explorer writes it; None: coin
    address: str
    index: int  # the address is 0/index below the account key
    amount: int  # base units
    decimals: int


@dataclass(frozen=True)
class GasBalance:
    """The network's own coin at an address that holds tokens: it pays the transfer fee."""

    network: str
    address: str
    index: int
    coin: str  # ETH, POL, TRX
    amount: int
    decimals: int


def derivation_path(
    keychain: KeyChain, account: ExtendedPublicKey, index: int, bitcoin_coin: int = 0
) -> str:
    """The full path of deposit address `0/index`, as a signing wallet needs it. The account
    number comes from the key itself (its child number), purpose and coin from the chain."""
    purpose, coin = _PURPOSE_COIN.get(keychain, (84, bitcoin_coin))
    number = account.child_number - HARDENED if account.child_number >= HARDENED else 0
    return f"m/{purpose}'/{coin}'/{number}'/0/{index}"


def check_destination(keychain: KeyChain, address: str, network: BitcoinNetwork | None) -> str:
    """The destination in its canonical form, or SweepError naming what is wrong."""
    address = address.strip()
    try:
        if keychain is KeyChain.EVM:
            if not is_checksum_valid(address):
                raise InvalidAddress("checksum")
            return to_checksum_address(address)
        if keychain is KeyChain.TRON:
            tron_to_hex(address)
            return address
        assert network is not None
        decode_segwit_v0_address(address, network)
        return address.lower()
    except InvalidAddress:
        raise SweepError(f"the {keychain} destination is not a valid address") from None


def plan_document(
    holdings: Sequence[Holding],
    gas: Sequence[GasBalance],
    paths: Mapping[tuple[KeyChain, int], str],
    destinations: Mapping[KeyChain, str],
    unreachable: Sequence[str],
) -> dict[str, object]:
    """The unsigned sweep description (JSON-ready): per network and asset the addresses that
    hold a balance, each with its derivation path and the transfer to make; the addresses whose
    tokens cannot move until the network's coin pays the fee; the networks not asked."""
    coin_at = {(g.network, g.address): g for g in gas}
    transfers: list[dict[str, object]] = []
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for holding in sorted(holdings, key=lambda h: (h.network, h.asset, h.index)):
        if holding.amount <= 0:
            continue
        transfers.append(
            {
                "network": holding.network,
                "asset": holding.asset,
                "contract": holding.contract,
                "address": holding.address,
                "derivation_path": paths[(holding.keychain, holding.index)],
                "amount": format_units(holding.amount, holding.decimals),
                "amount_base_units": str(holding.amount),
                "to": destinations.get(holding.keychain),
            }
        )
        total, _ = totals.get((holding.network, holding.asset), (0, holding.decimals))
        totals[(holding.network, holding.asset)] = (total + holding.amount, holding.decimals)
    needs_gas = [
        {
            "network": balance.network,
            "address": balance.address,
            "derivation_path": paths[(holding.keychain, holding.index)],
            "coin": balance.coin,
            "balance": format_units(balance.amount, balance.decimals),
        }
        for holding in holdings
        if holding.contract is not None and holding.amount > 0
        for balance in (coin_at.get((holding.network, holding.address)),)
        if balance is not None and balance.amount == 0
    ]
    unique_needs = list({(n["network"], n["address"]): n for n in needs_gas}.values())
    return {
        "format": "aiapi-sweep-plan/1",
        "unsigned": True,
        "destinations": {keychain.value: address for keychain, address in destinations.items()},
        "transfers": transfers,
        "needs_gas": unique_needs,
        "totals": [
            {"network": network, "asset": asset, "amount": format_units(amount, decimals)}
            for (network, asset), (amount, decimals) in sorted(totals.items())
        ],
        "unreachable": sorted(unreachable),
    }
