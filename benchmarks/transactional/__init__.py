"""Transactional sends: thousands of single-user messages through the whole pipeline, alone
or while a broadcast is going out.

What runs, as the fan-out benchmark runs it (and with its pieces): the granian simulators
of APNs, FCM and Web Push, ``pushcore api`` (one process) and ``pushcore worker
--processes P --threads T`` as separate processes, on a database and a Redis database of
the benchmark's own (both emptied first), an app with all three providers' credentials and
``--devices`` installations of ``--devices``/2 users seeded with COPY
(``pushcore.demo.seed``: two of three devices belong to a user, so some users have none;
the benchmark targets only users that have installations, spread evenly over them).

The load: ``--messages`` sends, each ``POST /v1/apps/{app_code}/messages`` to one user
(``{"target": {"external_user_ids": [user]}}``, every user once), from ``--concurrency``
clients of :mod:`benchmarks.loadgen` (one keep-alive connection each, one request at a
time, server key as bearer; a message whose request failed is counted, never retried),
after ``--warmup`` messages to other users (default 100) have been sent and finished: a
worker's first lane claims open its HTTP/2 connections, and the first messages of a cold
run took ~2 s for that (the warm-up's own latencies are reported apart).  With ``--batch
N`` the same messages go N at a time through ``POST /v1/apps/{app_code}/messages:batch``
(``{"messages": [...]}`` answered 200 ``{"results": [{"status": 202, "message": {...}},
...]}``); the run is skipped with a message when that route answers 404.

What is reported (JSON on stdout and in ``<out>/transactional[-<label>]-<date>.json``, a
PNG beside it, a summary on stderr):

- submit: accepted messages/s (first request sent to last answer) and latency p50/p90/p99
  per request, seen by the client (with ``--batch``, per call: each message's submit
  latency is its call's);
- end to end: messages/s from the first message's ``created_at`` to the last one's
  ``finished_at`` (PostgreSQL), and each message's ``created_at`` -> ``finished_at``
  p50/p90/p99 with its histogram;
- CPU seconds per message of the API, the workers, PostgreSQL, Redis and the simulators
  (``/proc``, as the fan-out benchmark reads it), from the first request to the sample
  that saw every message final; SQL statements per message over the same window
  (``pg_stat_statements`` when usable, else ``xact_commit``, then read 11 s later since
  PostgreSQL reports an idle backend's commits up to 10 s late; the sampler's own
  statements subtracted, the idle system's of those 11 s not);
- the timeline every ``--interval`` s (one statement per sample): messages accepted,
  messages final, the broadcast's answered notifications, SQL statements;
- correctness: every targeted live registration accepted exactly once and no other of the
  app's registrations accepted (the simulators' per-token tables), every targeted dead one
  deleted, every message ``done`` with counts that add up to what was targeted;
- the goals (>= 2,000 messages/s end to end, submit p99 <= 50 ms, created -> finished p99
  <= 1 s, and the same p99s during a broadcast), each met or missed.

``--during-broadcast N``: a second app gets N installations (seeded as many more and the
ones whose tokens the first app also has deleted, so that the simulators' per-token
counts of the two apps never mix); a broadcast to it goes out through the API, and once it
is ``sending`` and ``--broadcast-lead`` seconds of its rate have been sampled, the
transactional load starts.  Reported besides: the broadcast's notifications/s before the
load and during it (from its counters in the timeline), whether it finished during the
load and by the end of the run (it is waited for, up to ``--timeout``), its own
exactly-once check (the fan-out benchmark's), and the transactional latencies of the
messages created while it was still going out.  CPU and SQL figures then include the
broadcast's work (the JSON says how many of its notifications fell in the window).

    .venv/bin/python -m benchmarks.transactional [--devices 20000] [--messages 2000]
        [--warmup 100] [--concurrency 32] [--batch N] [--during-broadcast 0] [--broadcast-lead 5]
        [--processes 2] [--threads 4] [--out benchmarks/results] [--label NAME]
        [--set PUSHCORE_NAME=VALUE ...]

The modules, in the order a run goes through them: ``cli`` (arguments, files, summary),
``stage`` (stores, simulators, processes, apps, seeding, the users targeted), ``measure``
(the broadcast, the load and the CPU and SQL read around it), ``load`` (the clients),
``timeline`` (the sampler), ``checks``, ``report`` and ``plot``.
"""
