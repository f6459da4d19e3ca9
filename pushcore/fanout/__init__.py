"""The fan-out engine: a message becomes batches in the ledger, batches become sends.

- ``targets``: the six ways to address a message (pure).
- ``planning``: resolving an audience into batches with keyset scans, resumable.
- ``sending``: one batch: claim, load tokens, deliver, write results back.
- ``reaper``: hands out again what a dead worker or a lost Redis message left behind.
- ``backoff``: when a retryable registration is tried again (pure).
"""
