from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pushcore.gateways.simulators import Engine, Simulators


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One CA for the whole session: certificate generation is the slow part of a start.
    return tmp_path_factory.mktemp("simulators-ca")


@pytest.fixture(params=["h2", "granian"])
async def sims(request: pytest.FixtureRequest, ca_dir: Path) -> AsyncIterator[Simulators]:
    engine: Engine = request.param
    async with Simulators.start(engine=engine, ca_dir=ca_dir) as started:
        yield started


@pytest.fixture
async def client(sims: Simulators) -> AsyncIterator[httpx.AsyncClient]:
    verify = ssl.create_default_context(cafile=str(sims.ca_file))
    async with httpx.AsyncClient(http2=True, verify=verify, timeout=10) as c:
        yield c
