"""Encryption of credentials at rest: HKDF(SHA-256) of TWILIO_JOBS_SECRET_KEY into a Fernet key;
and the tokens we sign (status-callback URLs), keyed the same way.

Rotation: with TWILIO_JOBS_SECRET_KEY_PREVIOUS set, the new key encrypts and signs, and both
decrypt and verify (cryptography's MultiFernet), so records and the callback URLs handed to
Twilio under the old key keep working until they end; then drop the previous key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"twilio-jobs/credentials")))


class Cipher:
    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        """`secret` encrypts and signs; it and each of `previous` decrypt and verify."""
        self._fernet = MultiFernet([_fernet(secret), *(_fernet(p) for p in previous)])
        self._mac_key = _derive(secret, b"twilio-jobs/tokens")
        self._mac_keys = [self._mac_key, *(_derive(p, b"twilio-jobs/tokens") for p in previous)]
        self._index_mac = hmac.new(_derive(secret, b"twilio-jobs/index"), digestmod=hashlib.sha256)
        self._recent: dict[str, tuple[float, str]] = {}
        self._decrypted: dict[str, str] = {}

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def encrypt_recent(self, plaintext: str, max_age: float = 60.0) -> str:
        """`encrypt`, reusing the ciphertext made for the same plaintext within `max_age`
        seconds: a burst of jobs on one account costs one encryption, not one per job. Records
        holding the same ciphertext show that their tokens are equal, which the account SID
        beside it shows anyway."""
        now = time.monotonic()
        hit = self._recent.get(plaintext)
        if hit is not None and now - hit[0] < max_age:
            return hit[1]
        ciphertext = self.encrypt(plaintext)
        if len(self._recent) >= 1024:
            self._recent.clear()
        self._recent[plaintext] = (now, ciphertext)
        return ciphertext

    def decrypt(self, ciphertext: str) -> str:
        # Producers reuse a ciphertext for a minute (`encrypt_recent`), so a worker sees the
        # same one job after job: remember the last ones instead of decrypting each time.
        plaintext = self._decrypted.get(ciphertext)
        if plaintext is not None:
            return plaintext
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted with this secret key") from exc
        if len(self._decrypted) >= 1024:
            self._decrypted.clear()
        self._decrypted[ciphertext] = plaintext
        return plaintext

    @classmethod
    def of(cls, keys: Sequence[str]) -> Cipher:
        """From `Settings.secret_keys`: the current key, then the previous one."""
        return cls(keys[0], keys[1:])

    def digest(self, text: str) -> str:
        """The index bucket of `text` (a phone number): 3 hex digits of a keyed digest, one of
        4,096. Without the secret key it cannot be turned back into the number by trying every
        number, and each bucket holds many numbers (the search checks the record's)."""
        mac = self._index_mac.copy()
        mac.update(text.encode())
        return mac.hexdigest()[:3]

    def sign(self, message: str) -> str:
        return hmac.new(self._mac_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        given = signature.encode(errors="replace")
        return any(hmac.compare_digest(_hex(k, message), given) for k in self._mac_keys)


def _hex(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest().encode()
