"""The node on the network: the peer app (PROTOCOL §6) with its push handler, request
authentication and limits, problem+json errors, the local lookup listener, and the service
that starts the listeners and the sync scheduler together.

Imports: sync, store, merged, home, config, clock, and the pure parts.
"""
