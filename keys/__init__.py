"""Identities: Ed25519 signers and verifiers, vkeys, key files, the trust store."""

from keys.ed25519 import SIGNATURE_BYTES, Signer, Verifier
from keys.errors import (
    ConfigError,
    EquivocationError,
    HashfedError,
    KeyFileError,
    ProtocolError,
    StoreError,
    TransportError,
    VerificationError,
)
from keys.keyfile import load_signer, write_signer
from keys.trust import TrustedOrg, TrustStore
from keys.vkey import is_org_id, key_hash

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
