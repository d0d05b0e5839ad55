"""Identities: Ed25519 signers and verifiers, vkeys, key files, the trust store."""
