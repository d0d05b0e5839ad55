"""The hashfed wire contract, pure: bytes in, objects out. No IO, no clock."""
