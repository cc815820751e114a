"""An existing installation upgrades to networks as data: the addresses customers were given stay
theirs, deposits keep their ids, and the next address continues the same index sequence."""

from __future__ import annotations

from functools import partial

import psycopg
from aiapi_payments.config import build_config
from aiapi_payments.model import KeyChain
from aiapi_payments.repository import Repository
from aiapi_payments.settings import PaymentsSettings
from aiapi_shared.db import load_migrations, migrate, open_pool

from tests.payments.service import query
from tests.payments.wallets import ETH_ADDRESS_0, ETH_XPUB, eth_deposit_address

PACKAGE = "aiapi_payments.migrations"


async def test_addresses_and_deposits_of_before_survive_the_upgrade(database_url: str) -> None:
    before = [m for m in load_migrations(PACKAGE) if m.version < 3]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE SCHEMA payments")
        await conn.execute(
            "CREATE TABLE payments.schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in before:
            async with conn.transaction():
                await conn.execute("SET LOCAL search_path TO payments, public")
                await conn.execute(migration.sql_text.encode())
                await conn.execute(
                    "INSERT INTO payments.schema_migrations (version, name, checksum)"
                    " VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        # What the service before this change wrote: an Ethereum address and a credited USDT.
        await conn.execute(
            "INSERT INTO payments.addresses (account_id, network, derivation_index, address)"
            " VALUES ('acc_old', 'ethereum', 1, %s)",
            (eth_deposit_address(1),),
        )
        await conn.execute(
            "INSERT INTO payments.deposits (network, asset, tx_hash, position, account_id,"
            " address, amount, state, first_seen_at, usd_nano) VALUES ('ethereum', 'USDT',"
            " '0x01', 0, 'acc_old', %s, 5000000, 'credited', now(), 5000000000)",
            (eth_deposit_address(1),),
        )
        await conn.execute(
            "INSERT INTO payments.chain_heads (network, head) VALUES ('ethereum', 100)"
        )

    assert await migrate(database_url, schema="payments", package=PACKAGE) == ["0003_networks.sql"]
    config = build_config(
        PaymentsSettings(
            price_sources="",
            eth_rpc_url="http://127.0.0.1:9",
            eth_xpub=ETH_XPUB,
            eth_address_0=ETH_ADDRESS_0,
        )
    )
    async with open_pool(database_url, schema="payments") as pool:
        repository = Repository(pool)
        derive = partial(config.derive_from, KeyChain.EVM)
        kept = await repository.assign_address("acc_old", KeyChain.EVM, derive)
        new = await repository.assign_address("acc_new", KeyChain.EVM, derive)
        (record,) = await repository.account_deposits("acc_old")
        heads = await repository.heads()
    assert (kept.index, kept.address) == (1, eth_deposit_address(1))
    assert (new.index, new.address) == (2, eth_deposit_address(2))
    assert (record.deposit.deposit_id, record.deposit.scale) == ("ethereum:USDT:0x01:0", 6)
    assert heads["ethereum"].head == 100 and heads["ethereum"].finalized is None
    rows = await query(database_url, "SELECT keychain FROM payments.addresses ORDER BY 1")
    assert rows == [("evm",), ("evm",)]
