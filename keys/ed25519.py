"""Ed25519 identities: a Signer holds an org's private key, a Verifier its public key.

Both are named by the org id (PROTOCOL §1) and identified on the wire by their key id
``<name>+<hash8>`` (PROTOCOL §2). Both are immutable. The private key leaves a Signer only
through ``keys.keyfile``, and no ``repr`` shows it.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hashfed.keys.errors import ConfigError, ProtocolError, VerificationError
from hashfed.keys.vkey import (
    ED25519_KEY_BYTES,
    format_vkey,
    is_org_id,
    key_hash,
    parse_vkey,
)

SIGNATURE_BYTES = 64
"""Length of an Ed25519 signature."""

__all__ = ["SIGNATURE_BYTES", "Signer", "Verifier", "key_hash"]


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Signer:
    """An org's Ed25519 private key, able to sign. Compared by identity."""

    name: str
    private_key: InitVar[Ed25519PrivateKey]
    public_key: bytes = field(init=False)
    key_hash: bytes = field(init=False)
    key_id: str = field(init=False)
    _private: Ed25519PrivateKey = field(init=False)

    def __post_init__(self, private_key: Ed25519PrivateKey) -> None:
        if not is_org_id(self.name):
            raise ConfigError(f"key name {self.name!r} is not an org id")
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ConfigError("a Signer needs an Ed25519 private key")
        public_key = private_key.public_key().public_bytes_raw()
        digest = key_hash(self.name, public_key)
        object.__setattr__(self, "_private", private_key)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "key_hash", digest)
        object.__setattr__(self, "key_id", f"{self.name}+{digest.hex()}")

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key for org ``name``."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The key for org ``name`` derived from a 32-byte RFC 8032 seed."""
        if not isinstance(seed, bytes) or len(seed) != ED25519_KEY_BYTES:
            raise ConfigError("an Ed25519 seed must be exactly 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(message)

    def vkey(self) -> str:
        """The verifier key text of this key's public half."""
        return format_vkey(self.name, self.public_key)

    def verifier(self) -> Verifier:
        """The Verifier for this key."""
        return Verifier(self.name, self.public_key)

    def _seed(self) -> bytes:
        """The raw 32-byte seed. For ``keys.keyfile`` only; never log or send it."""
        return self._private.private_bytes_raw()

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


@dataclass(frozen=True, order=True, repr=False, slots=True)
class Verifier:
    """An org's Ed25519 public key. Equal, hashed and ordered by ``(name, public_key)``."""

    name: str
    public_key: bytes
    key_hash: bytes = field(init=False, compare=False)
    key_id: str = field(init=False, compare=False)
    _public: Ed25519PublicKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not is_org_id(self.name):
            raise ProtocolError(f"key name {self.name!r} is not an org id")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != ED25519_KEY_BYTES:
            raise ProtocolError("an Ed25519 public key must be exactly 32 bytes")
        digest = key_hash(self.name, self.public_key)
        object.__setattr__(self, "_public", Ed25519PublicKey.from_public_bytes(self.public_key))
        object.__setattr__(self, "key_hash", digest)
        object.__setattr__(self, "key_id", f"{self.name}+{digest.hex()}")

    @classmethod
    def from_vkey(cls, text: str) -> Verifier:
        """Parse a verifier key ``<name>+<hash8>+<base64(0x01 || key)>``; ProtocolError if malformed."""
        name, public_key = parse_vkey(text)
        return cls(name, public_key)

    def vkey(self) -> str:
        """The verifier key text."""
        return format_vkey(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return if ``signature`` is this key's signature of ``message``; else VerificationError."""
        if len(signature) != SIGNATURE_BYTES:
            raise VerificationError(f"signature by {self.key_id} has {len(signature)} bytes, not 64")
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            raise VerificationError(f"bad signature by {self.key_id}") from None

    def __repr__(self) -> str:
        return f"Verifier({self.vkey()!r})"
