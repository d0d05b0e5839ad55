"""Everything that touches the world, one room a role (imports point down this list):

    cli/       the ``hashfed`` command: a module per group, a few lines a command
    demo.py    three nodes on this machine, end to end
    http/      the peer app, push, auth and limits, problems, the local listener (lookup,
               match, change feed), TAXII, console, metrics, and the service
    sync/      transport, puller, one pull round, the scheduler, the pusher
    home.py, publish.py, report.py
               a node's folder; staged entries to a signed checkpoint; the status report
    store/     SQLite: connection, migrations, transactions, a repository per concern
    merged/    the merged list: its only writer, its queries, the PDQ and exact indexes,
               matching a file's hashes
    clock.py, config.py, events.py
               time as the node records it; the one config object; log events

``tests/unit/test_layout.py`` holds every import to this order.
"""
