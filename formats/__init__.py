"""File formats hashfed reads and writes, pure: one module a format.

Readers take text or bytes and yield ``hashfed.protocol.entries.Entry`` values (or raise
``ProtocolError`` naming the line); writers take ``hashfed.protocol.records.Record`` values
and return or stream text. Nothing here opens files, sockets or databases, or reads the
clock: the CLI and the HTTP layer own the IO. Imports: ``hashfed.protocol`` (and keys) only.
"""
