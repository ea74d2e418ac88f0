"""Key exchange and encryption of the encrypt-type-7 handshake.

ECDH on SECP160r1 (python-ecdsa: the `cryptography` library does not offer that curve), raw
X coordinate as the shared secret, IV = MD5(shared), temporary key = shared[:16]; the session
key is MD5 of 16 bytes of a static table (selected by the device's seed) and the device's
random. Frames are AES-128-CBC with PKCS#7 padding and the same IV for the whole session.
MD5 here is the protocol's choice, not ours, and none of it is a security boundary we rely on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from ecdsa import ECDH, SECP160r1, SigningKey, VerifyingKey  # type: ignore[import-untyped]
from ecdsa.errors import MalformedPointError  # type: ignore[import-untyped]

from aigloo_edge.errors import SensorError

PUBLIC_KEY_SIZE = 40  # X || Y, 20 bytes each, big-endian, no 04 prefix
SHARED_SIZE = 20
KEY_TABLE_SIZE = 65_280  # 255 rows of 256 bytes
KEY_TABLE_SHA256 = "3d1ba59b40c46bc86ba35fa231a3db196b448bbdfb1635c88ddd42f24abd4b2a"
_BLOCK = 16


def md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


class EphemeralKey:
    """One connection's SECP160r1 key pair (a fresh one per connection)."""

    def __init__(self, signing_key: SigningKey) -> None:
        self._key = signing_key

    @classmethod
    def generate(cls) -> EphemeralKey:
        return cls(SigningKey.generate(curve=SECP160r1))

    @classmethod
    def from_scalar(cls, scalar: int) -> EphemeralKey:
        """A fixed key, for test vectors."""
        return cls(SigningKey.from_secret_exponent(scalar, curve=SECP160r1))

    def public_bytes(self) -> bytes:
        raw: bytes = self._key.get_verifying_key().to_string("raw")
        return raw

    def shared_secret(self, peer_public: bytes) -> bytes:
        """The 20-byte X coordinate (leading zeros kept); SensorError for an invalid point."""
        ecdh = ECDH(curve=SECP160r1)
        ecdh.load_private_key(self._key)
        ecdh.load_received_public_key(_peer_key(peer_public))
        shared: bytes = ecdh.generate_sharedsecret_bytes()
        return shared


def _peer_key(data: bytes) -> VerifyingKey:
    if len(data) != PUBLIC_KEY_SIZE:
        raise SensorError(f"station public key is {len(data)} bytes, expected {PUBLIC_KEY_SIZE}")
    try:
        return VerifyingKey.from_string(data, curve=SECP160r1, valid_encodings=["raw"])
    except (MalformedPointError, ValueError) as exc:
        raise SensorError("station sent an invalid public key (not a SECP160r1 point)") from exc


@dataclass(frozen=True, slots=True)
class CipherKey:
    key: bytes  # 16 bytes: AES-128
    iv: bytes

    def encrypt(self, plaintext: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).encryptor()
        return encryptor.update(padded) + encryptor.finalize()

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Whole blocks only; the padding is stripped when it is valid, as the reference does."""
        whole = ciphertext[: len(ciphertext) - len(ciphertext) % _BLOCK]
        if not whole:
            return b""
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(self.iv)).decryptor()
        plain = decryptor.update(whole) + decryptor.finalize()
        return _unpad(plain)


def _unpad(plain: bytes) -> bytes:
    pad = plain[-1]
    if 1 <= pad <= _BLOCK and plain[-pad:] == bytes([pad]) * pad:
        return plain[:-pad]
    return plain


def temporary_key(shared: bytes) -> CipherKey:
    """The key that protects only the key-info reply, and the IV of the whole session."""
    return CipherKey(key=shared[:16], iv=md5(shared[:SHARED_SIZE]))


def session_key(srand: bytes, seed: bytes, iv: bytes) -> CipherKey:
    """MD5(table[pos:pos+16] || sRand) with pos = seed[0]*0x10 + ((seed[1]-1) & 0xFF)*0x100."""
    pos = seed[0] * 0x10 + ((seed[1] - 1) & 0xFF) * 0x100
    table = key_table()
    if len(srand) != 16 or pos + 16 > len(table):
        raise SensorError(f"station sent an unusable key seed {seed.hex()}")
    return CipherKey(key=md5(table[pos : pos + 16] + srand), iv=iv)


@cache
def key_table() -> bytes:
    """The static table shipped with the package; checked so a damaged copy fails loudly."""
    data = resources.files(__package__).joinpath("keytable.bin").read_bytes()
    if len(data) != KEY_TABLE_SIZE or hashlib.sha256(data).hexdigest() != KEY_TABLE_SHA256:
        raise SensorError("the EcoFlow key table in the package is damaged; reinstall")
    return data


def auth_payload(user_id: str, serial: str) -> bytes:
    """The 32 ASCII characters of upper-case hex MD5(user_id || serial)."""
    return md5((user_id + serial).encode("ascii")).hex().upper().encode("ascii")
