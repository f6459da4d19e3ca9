"""The entry point Dramatiq's command line calls in each worker process.

``pushcore worker`` runs ``python -m dramatiq workers.boot:setup``; Dramatiq calls
:func:`setup` (in the main process and again in every worker process it starts), which
reads the settings once, builds the broker from them, adds the process resources and
declares the actors on it.  Nothing happens at import.  Logging is Dramatiq's
(its command line configures it before it calls this).
"""

from __future__ import annotations

import dramatiq

from pushcore.config import load_settings
from workers.actors import declare
from workers.broker import make_worker_broker
from workers.resources import WorkerResources

ENTRY = "workers.boot:setup"


def setup() -> None:
    settings = load_settings()
    broker = make_worker_broker(settings)
    resources = WorkerResources(settings)
    broker.add_middleware(resources)
    declare(broker, resources)
    dramatiq.set_broker(broker)
