"""Secrets the gateway must send on (sidecar keys, SSO client secrets) are stored encrypted, never in the clear.

AES-256-GCM with a key derived from SECRET_KEY by HKDF-SHA256 (its own `info` label, so the derived key
serves nothing else). Rotating SECRET_KEY makes stored secrets unreadable: re-enter them after a rotation.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b'mindrouter sidecar keys v1'
_VERSION = 'v1:'


class SecretBoxError(Exception):
    """A stored secret cannot be read (SECRET_KEY changed, or the value is corrupt)."""


class SecretBox:
    def __init__(self, secret_key: str, *, info: bytes = _INFO) -> None:
        """`info` labels what the derived key is for: each kind of secret gets a key of its own."""
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, token: str) -> str:
        if not token.startswith(_VERSION):
            raise SecretBoxError('unknown secret format')
        raw = base64.urlsafe_b64decode(token[len(_VERSION):])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], None).decode()
        except InvalidTag as exc:
            raise SecretBoxError('cannot decrypt: was SECRET_KEY changed since it was stored?') from exc
