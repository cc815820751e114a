"""What a request handler may use, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from aiapi_accounts.account_mail import AccountMail
from aiapi_accounts.addressbook import AddressBook
from aiapi_accounts.catalogue_view import CatalogueView
from aiapi_accounts.commands import Accounts
from aiapi_accounts.operators.service import Operators
from aiapi_accounts.peers import Peers
from aiapi_accounts.settings import AccountsSettings


@dataclass(frozen=True)
class Context:
    settings: AccountsSettings
    accounts: Accounts
    peers: Peers
    catalogue: CatalogueView
    addresses: AddressBook
    mail: AccountMail
    operators: Operators
