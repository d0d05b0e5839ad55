"""Identities: Ed25519 signers and verifiers, vkeys, key files, the trust store."""

from hashfed.keys.ed25519 import SIGNATURE_BYTES, Signer, Verifier
from hashfed.keys.errors import (
    ConfigError,
    EquivocationError,
    HashfedError,
    KeyFileError,
    ProtocolError,
    StoreError,
    TransportError,
    VerificationError,
)
from hashfed.keys.keyfile import load_signer, write_signer
from hashfed.keys.trust import TrustedOrg, TrustStore
from hashfed.keys.vkey import is_org_id, key_hash

__all__ = [
    "SIGNATURE_BYTES",
    "ConfigError",
    "EquivocationError",
    "HashfedError",
    "KeyFileError",
    "ProtocolError",
    "Signer",
    "StoreError",
    "TransportError",
    "TrustStore",
    "TrustedOrg",
    "VerificationError",
    "Verifier",
    "is_org_id",
    "key_hash",
    "load_signer",
    "write_signer",
]
