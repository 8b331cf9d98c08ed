"""Encryption of credentials at rest: HKDF(SHA-256) of TWILIO_JOBS_SECRET_KEY into a Fernet key."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class Cipher:
    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"twilio-jobs/credentials")))
        self._mac_key = _derive(secret, b"twilio-jobs/tokens")

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with this secret key") from exc

    def sign(self, message: str) -> str:
        return hmac.new(self._mac_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message).encode(), signature.encode(errors="replace"))
