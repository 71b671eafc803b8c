"""Encryption of provider tokens at rest and pseudonymous, keyed hashes.

Fernet (AES-128-CBC + HMAC-SHA256) through ``MultiFernet`` so keys rotate: the first key
encrypts, every listed key decrypts, and ``rotate`` re-encrypts old ciphertext under the newest.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenDecryptError(RuntimeError):
    """Stored ciphertext cannot be decrypted with any configured key (key removed too early)."""


class TokenCipher:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise TokenDecryptError(
                "stored token cannot be decrypted with OHE_TOKEN_ENCRYPTION_KEYS"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        return self._fernet.rotate(ciphertext.encode()).decode()


def keyed_digest(secret: str, *parts: str, length: int = 16) -> str:
    """HMAC-SHA256 of the parts under ``secret``, hex, truncated: opaque and not guessable."""
    message = "\x1f".join(parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:length]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
