"""A broadcast to N devices through the whole pipeline, with two baselines beside it.

What runs, as an operator would run it: the granian simulators of APNs, FCM and Web Push,
``pushcore api`` and ``pushcore worker --processes P --threads T`` as separate processes,
on a database and a Redis database of the benchmark's own (both emptied first).  N
installations are seeded with COPY (``pushcore.demo.seed``: 45% iOS, 40% Android, 15% Web,
5% dead tokens by the simulators' rules, users with one to three devices), one broadcast is
sent through the HTTP API and followed until ``done``.

What is reported (JSON, PNG, a short summary):

- wall time to ``done`` (seen by polling, and the message's own created/finished times);
- notifications/s overall and every 0.5 s (the message's counters, read from PostgreSQL
  so that following the send costs the API nothing);
- CPU seconds per 1,000 notifications of each component, from ``/proc`` (workers and their
  children, the API, the granian simulators, the PostgreSQL cluster, redis-server; the last
  two are whole servers: other databases' load on them counts, see
  ``postgresql_other_databases_xacts``);
- worker peak RSS (VmHWM of each worker process) and RSS over time;
- SQL statements per 1,000 notifications: ``pg_stat_statements`` when the extension can be
  used (it needs ``shared_preload_libraries``), else committed transactions of the database
  (``pg_stat_database.xact_commit``; pushcore runs autocommit statements, so one per
  statement, and a transaction block of several counts once); the benchmark's own sampling
  statements are subtracted; overall and steady state (10%-90% of the send);
- correctness from the simulators' per-token table: every live registration accepted
  exactly once, no dead one accepted, and afterwards every dead registration deleted and
  every live one kept.

Baselines in the same run, on the same simulators, with live tokens of the same run:

- ``bare_transport``: the delivery layer alone (``CurlTransport`` + providers through
  ``pushcore.fanout.delivery.deliver``), tokens from memory, batches of the pipeline's
  batch size, the workers' in-flight bound and connections per origin, T batches at a time
  in each of P processes: the ceiling of pushcore's own sender without queue and database;
- ``naive``: ``asyncio.gather`` over every token at once, no queue: aioapns for APNs,
  ``httpx.AsyncClient(http2=True)`` for FCM and Web Push, in one process.

    .venv/bin/python -m benchmarks.fanout [--devices 1000000] [--processes 2] [--threads 4]
        [--out benchmarks/results] [--label 1m] [--set PUSHCORE_BATCH_SIZE=1000 ...]

The modules, in the order a run goes through them:

- ``cli``: the command line; writes the JSON and PNG and prints the summary;
- ``pipeline``: the run: database, Redis, simulators, API and worker processes, the app,
  the seeded registry, then the broadcast, the checks and the baselines in turn;
- ``broadcast``: the measured send (CPU, SQL statements, RSS around it; counters sampled
  until ``done``);
- ``statements``: how SQL statements are counted, overall and in the steady state;
- ``checks``: exactly once and dead deleted, from the simulators' per-token tables;
- ``bare``, ``naive``: the two baselines;
- ``registrations``, ``simulators``: what the baselines and checks share (registrations
  as plain data; what is read of the running simulators);
- ``report``, ``plot``: the JSON document and its summary; the PNG.
"""
