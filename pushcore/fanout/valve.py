"""The deletion safety valve: a batch whose answers look like our misconfiguration.

A wrong FCM project, a wrong APNs topic or the wrong APNs environment makes the provider
answer "dead" for every token (SENDER_ID_MISMATCH, DeviceTokenNotForTopic, BadDeviceToken).
Deleting on those answers would wipe an app's registry in one campaign, so when more than
``share`` of a batch of at least ``minimum`` registrations is answered dead for such a
reason (``Result.suspect``), the batch deletes nothing and the message stops as ``failed``
with a sender error, as for a refused credential.  Ordinary dead answers (APNs
Unregistered, FCM UNREGISTERED, Web Push 404/410) are never suspect and keep deleting.

The valve judges one batch at a time: batches of the same message already in flight on
other workers are judged on their own answers; batches claimed after it see the message
``failed`` and send nothing.  A batch below ``minimum`` (the transactional lane's, a small
app's) never trips it: too few answers to tell a misconfiguration from bad luck.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pushcore.providers.base import Result


def suspect_reasons(results: Iterable[Result]) -> Counter[str]:
    """How many answers of each misconfiguration-class dead reason."""
    return Counter(r.reason for r in results if r.suspect)


def tripped(suspect: int, registrations: int, *, share: float, minimum: int) -> bool:
    """True when ``suspect`` dead answers among ``registrations`` sent mean: stop."""
    return registrations >= minimum and suspect > share * registrations
