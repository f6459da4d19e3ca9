"""The inbox at scale: a broadcast with and without ``inbox`` side by side, then inbox
reads and seen marks under concurrent clients on inboxes of ~100 messages each.

``python -m benchmarks.inbox`` (granian simulators, ``pushcore api --workers 2``, ``pushcore
worker --processes 2 --threads 4``, a database and Redis database of its own):

1. seed ``--devices`` installations (half as many users; two of three devices personalized);
2. broadcast to the whole app without and with ``inbox: true``, alternated ``--repeats``
   times, each timed from created to done in the database's own timestamps;
3. fill the inboxes through the API: ``--broadcasts`` inbox-only whole-app messages
   (stored once each) and ``--personal`` inbox-only messages to random lists of
   ``--list-size`` users (one entry per user, written by the planner), so a user holds
   about ``broadcasts + personal x list-size / users`` messages;
4. ``--concurrency`` clients on keep-alive connections: ``GET /v1/installations/{id}/inbox``
   for ``--seconds``, then ``POST …/inbox/seen`` (5 ids of the user's first page) for as long;
5. the inbox tables' sizes in bytes per stored entry.

The issue's size is ``--devices 2000000 --broadcasts 70 --personal 300 --list-size 100000``
(1,000,000 users holding ~100 messages each); the defaults are a tenth of it (100,000
users, 70 + 60 x 50,000 / 100,000 = 100 messages each).
"""
