"""Passwords (argon2id, off the event loop) and API keys (random 256-bit secrets, stored as SHA-256).

API keys are high-entropy, so a plain SHA-256 digest is enough to make the stored value useless to a
thief, and it costs about a microsecond, which keeps key checks off the hot path's budget. Argon2 is
for low-entropy human passwords only; one verify costs ~130 ms and 64 MiB here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

API_KEY_PREFIX = 'mr_'
_KEY_BYTES = 32  # 256 bits
_DISPLAY_CHARS = 8  # characters of the secret shown in lists, after the prefix

_hasher = PasswordHasher()  # argon2id, m=64 MiB, t=3, p=4
# Verified against when the user does not exist, so that "no such user" costs the same as "wrong password".
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class NewApiKey:
    plaintext: str  # shown to the user once, never stored
    prefix: str
    digest: str

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f'NewApiKey(prefix={self.prefix!r})'


def generate_api_key() -> NewApiKey:
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).rstrip(b'=').decode()
    plaintext = API_KEY_PREFIX + secret
    return NewApiKey(plaintext=plaintext, prefix=display_prefix(plaintext), digest=api_key_digest(plaintext))


def api_key_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def display_prefix(plaintext: str) -> str:
    return plaintext[: len(API_KEY_PREFIX) + _DISPLAY_CHARS]


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant work whether or not the account has a password (SSO accounts have none)."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(password: str, password_hash: str | None) -> bool:
    return await asyncio.to_thread(verify_password, password, password_hash)
