"""Local simulators of APNs, FCM and Web Push, speaking their wire protocols over HTTP/2
and TLS, so that pushcore can be developed, tested and benchmarked with no internet.

- :mod:`~pushcore.gateways.fates`: which tokens are live/dead/invalid (by prefix);
- :mod:`~pushcore.gateways.apns`, :mod:`~pushcore.gateways.fcm`,
  :mod:`~pushcore.gateways.webpush`: pure protocol logic, request -> response + counters;
- :mod:`~pushcore.gateways.h2server`: in-process engine (``h2``) with transport faults,
  also the transport tests' fault server;
- :mod:`~pushcore.gateways.rsgi`, :mod:`~pushcore.gateways.granian_engine`: fast engine
  (granian: the ``pushcore[simulators]`` extra);
- :mod:`~pushcore.gateways.simulators`: ``async with Simulators.start(...)``;
- :mod:`~pushcore.gateways.tls`: private CA and server certificate;
- :mod:`~pushcore.gateways.cli`: ``pushcore simulators``.
"""
