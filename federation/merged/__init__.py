"""The merged list (PROTOCOL §8): one row per (hash, log) in ``contributions``, its only
writer (``writer.apply_entries``, called by the store's commit path inside the page's
transaction), its read queries (``records``), and the PDQ index.

It sits below the store: it works on a connection it is given, inside transactions the
store opens, so that a page and its merge are one unit of work. Imports: ``hashfed.protocol``
only (and sqlite3).
"""
