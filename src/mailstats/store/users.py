"""Who may sign in to the dashboard: access tokens and users with a password.

Passwords are kept as argon2id hashes (argon2-cffi); a hash made with older parameters is
replaced on the next good sign-in. A session remembers a token's or a user's ID, never a
secret, and is looked up again on every request, so revoking a token ends its sessions.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailstats.errors import InvalidParameter
from mailstats.store.base import Account, Backend

Via = Literal["token", "user"]

_HASHER = PasswordHasher()
# Checked against when a name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash("not a password anyone has")


@dataclass(frozen=True)
class Signer:
    """Who signed in: a token or a user (by ID), and their account."""

    via: Via
    id: int
    account: Account


class Users:
    """Sign-in checks and user records of one database."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.q = backend.queries

    def create(self, account: Account, name: str, password: str) -> int:
        if not 1 <= len(name) <= 200 or name != name.strip():
            raise InvalidParameter("A user name is 1 to 200 characters, no outer spaces")
        if len(password) < 10:
            raise InvalidParameter("A password has at least 10 characters")
        if self.backend.fetch(self.q["user_by_name"], {"name": name}):
            raise InvalidParameter(f"A user named {name!r} exists already")
        with self.backend.transaction() as cur:
            cur.execute(
                self.q["user_insert"],
                {
                    "account_id": account.id,
                    "name": name,
                    "password_hash": _HASHER.hash(password),
                    "now": int(time.time()),
                },
            )
            return int(cur.fetchone()[0])

    def with_password(self, name: str, password: str) -> Signer | None:
        rows = self.backend.fetch(self.q["user_by_name"], {"name": name})
        if not rows:
            _verify(_DUMMY, password)
            return None
        user_id, stored, account_id, account_name, timezone = rows[0]
        if not _verify(stored, password):
            return None
        if _HASHER.check_needs_rehash(stored):
            with self.backend.transaction() as cur:
                new = {"id": user_id, "password_hash": _HASHER.hash(password)}
                cur.execute(self.q["user_rehash"], new)
        return Signer("user", int(user_id), Account(account_id, account_name, timezone))

    def with_token(self, token: str) -> Signer | None:
        from mailstats.store.core import hash_token

        if not token or len(token) > 256:
            return None
        digest = hash_token(token)
        rows = self.backend.fetch(self.q["token_sign_in"], {"hash": digest})
        if not rows or not hmac.compare_digest(bytes(rows[0][1]), digest):
            return None
        token_id, _, account_id, name, timezone = rows[0]
        return Signer("token", int(token_id), Account(account_id, name, timezone))

    def account(self, via: str, signer_id: int) -> Account | None:
        """The account of a session's signer, None once the token is revoked or user gone."""
        query = {"token": "token_account", "user": "user_account"}.get(via)
        if query is None:
            return None
        rows = self.backend.fetch(self.q[query], {"id": signer_id})
        return Account(*rows[0]) if rows else None


def _verify(stored: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
