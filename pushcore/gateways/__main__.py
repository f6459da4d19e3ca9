"""``python -m pushcore.gateways [options]``: the same as ``pushcore simulators``."""

from pushcore.gateways.cli import main

raise SystemExit(main())
