"""Staying in sync with peers: the transport (``Fetcher`` and its aiohttp implementation
with RFC 9421 signed requests), the puller (PROTOCOL §7), one pull round against one peer,
the scheduler that runs rounds while ``serve`` runs, and the pusher (an NGO's upload).

Imports: store, merged, home, config, clock, and the pure parts. Never ``http``: the
scheduler is given the running node through a small ``Node`` protocol of its own.
"""
