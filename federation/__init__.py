"""Everything that touches the world: store, merge, server, puller, config, CLI."""
