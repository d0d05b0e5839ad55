"""Shared fixtures: real node homes (real keys, real SQLite files in tmp_path) and real
servers on 127.0.0.1 with an OS-chosen port. Plain helpers are in ``tests.helpers``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from hashfed.federation.home import Home, init_home, open_home
from hashfed.federation.http.service import NodeService
from tests.helpers import Cli

# The org of the ``cli`` fixture's home.
CLI_ORG = "a.example"


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[[str], Home]:
    """``make_home("acme.example")`` → an initialised node home under tmp_path."""

    def make(org: str) -> Home:
        path = tmp_path / org
        init_home(path, org)
        return open_home(path)

    return make


@pytest.fixture
async def start_node() -> AsyncIterator[Callable[..., object]]:
    """``await start_node(home, **kwargs)`` → a started NodeService on 127.0.0.1:0
    (background sync off unless ``sync=True``); all are stopped at teardown."""
    services: list[NodeService] = []

    async def start(home: Home, **kwargs: object) -> NodeService:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        kwargs.setdefault("sync", False)
        service = NodeService(home, **kwargs)  # type: ignore[arg-type]
        await service.start()
        services.append(service)
        return service

    yield start
    for service in reversed(services):
        await service.stop()


@pytest.fixture
async def api(home: Home, start_node):  # type: ignore[no-untyped-def]
    """``(session, url)`` of the local listener of a node started on the test module's own
    ``home`` fixture."""
    service = await start_node(home, local_port=0)
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{service.local_bound_port}"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("HASHFED_HOME", raising=False)
    runner = Cli(capsys, tmp_path / CLI_ORG)
    runner.ok("init", "--org", CLI_ORG)
    return runner
