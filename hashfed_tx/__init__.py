"""hashfed as a python-threatexchange extension: ``threatexchange config extensions add
hashfed_tx`` in the CLI, ``HashfedSignalExchangeAPI`` in an HMA ``exchange_types`` list.

It is a thin HTTP client of a node's local listener (the change feed and the opinions API)
and imports nothing from ``hashfed``: the extension runs where the server is not installed
(an HMA container), and the listener's JSON is the only contract between the two.

    client.py    the listener's HTTP API, blocking, with errors split by blame
    signals.py   a merged-list record as a ThreatExchange signal; an opinion as an entry
    exchange.py  the SignalExchangeAPI: collab config, credentials, checkpoint, fetch, label
"""

from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest

from hashfed_tx.exchange import (
    HashfedCheckpoint,
    HashfedCollabConfig,
    HashfedCredentials,
    HashfedSignalExchangeAPI,
)
from hashfed_tx.signals import HashfedSignalMetadata

TX_MANIFEST = ThreatExchangeExtensionManifest(apis=(HashfedSignalExchangeAPI,))

__all__ = [
    "TX_MANIFEST",
    "HashfedCheckpoint",
    "HashfedCollabConfig",
    "HashfedCredentials",
    "HashfedSignalExchangeAPI",
    "HashfedSignalMetadata",
]
