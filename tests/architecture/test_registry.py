"""The platform registry is the single source: everything that knows platforms knows
every row of it, by iterating it.

Each check reads the real interface: the OpenAPI document the API serves, the actors a
worker declares on a real Dramatiq broker (Dramatiq's in-memory ``StubBroker``), the
queue a batch of each platform is enqueued on, the worker command line's queue list, the
metrics the send path exports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from prometheus_client import generate_latest

from pushcore.config import Settings
from pushcore.fanout import metrics
from pushcore.fanout.queue import BatchJob
from pushcore.providers import registry
from tests.deploy.workercli import dramatiq_run
from tests.registry.helpers import Client, json
from workers.actors import declare
from workers.broker import QUEUES
from workers.enqueue import DramatiqEnqueuer
from workers.resources import WorkerResources


def _ref(schema: dict[str, object]) -> str:
    """The component a property refers to, through ``anyOf: [ref, null]``."""
    text = str(schema)
    return text.split("#/components/schemas/")[1].split("'", maxsplit=1)[0]


async def test_openapi_knows_every_platform(client: Client) -> None:
    doc = await json(await client.get("/v1/openapi.json"), 200)
    schemas = doc["components"]["schemas"]
    for spec in registry.PLATFORMS:
        for name in ("AppCreate", "AppPatch"):
            prop = schemas[name]["properties"][spec.key]
            assert _ref(prop) == spec.credentials.__name__, (name, spec.key)
        assert spec.key in schemas["AppOut"]["properties"]
        assert spec.key in schemas["AppCreated"]["properties"]
        for name in ("SendRequest", "Notification"):
            prop = schemas[name]["properties"][spec.key]
            assert _ref(prop) == spec.overrides.__name__, (name, spec.key)
    platform = schemas["InstallationCreate"]["properties"]["platform"]
    assert set(platform["enum"]) == set(registry.NAMES)
    send_platforms = str(schemas["SendRequest"]["properties"]["platforms"])
    assert all(f"'{name}'" in send_platforms for name in registry.NAMES)


async def test_every_platform_has_its_queue_actor_and_enqueue(settings: Settings) -> None:
    broker = StubBroker()
    try:
        actors = declare(broker, WorkerResources(settings))
        enqueuer = DramatiqEnqueuer(broker)
        for spec in registry.PLATFORMS:
            assert spec.queue in QUEUES
            assert actors[spec.actor].queue_name == spec.queue
            await enqueuer.batches([BatchJob(batch_id=7, platform=spec.name)])
            (encoded,) = list(broker.queues[spec.queue].queue)
            message = Message.decode(encoded)
            assert (message.actor_name, message.args) == (spec.actor, (7,))
            broker.flush(spec.queue)
    finally:
        broker.close()


def test_worker_command_serves_every_queue(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings
) -> None:
    environ = {"PUSHCORE_DATABASE_URL": settings.database_url}
    default = dramatiq_run(["pushcore", "worker"], environ, monkeypatch, tmp_path)
    assert set(default.queues) == set(QUEUES)
    for spec in registry.PLATFORMS:
        one = dramatiq_run(
            ["pushcore", "worker", "--queues", spec.queue], environ, monkeypatch, tmp_path
        )
        assert one.queues == [spec.queue]


def test_metrics_declare_every_platform() -> None:
    metrics.declare_platforms()  # what every worker process does when it boots
    exposed = generate_latest().decode()
    for spec in registry.PLATFORMS:
        label = f'platform="{spec.metrics_label}"'
        for outcome in metrics.OUTCOMES:
            assert f'pushcore_notifications_total{{outcome="{outcome}",{label}}}' in exposed
        assert f"pushcore_registrations_deleted_total{{{label}}}" in exposed
        assert f"pushcore_batch_seconds_count{{{label}}}" in exposed
