"""The inbox tests use the fan-out's fixtures: the API with a Redis database of its own, the
in-process simulators and real worker processes (``launch``)."""

from __future__ import annotations

from tests.fanout.conftest import (  # noqa: F401  (fixtures)
    api,
    clean_redis,
    fanout_settings,
    launch,
    sim_ca_dir,
    sims,
    worker_factory,
)
