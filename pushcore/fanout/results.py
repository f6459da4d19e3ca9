"""Per-recipient results of one batch, encoded compactly for ``batch_results``.

Each registration of a batch ends with a label ``"<outcome>/<reason>"``: outcome
``delivered``, ``invalid`` (answered dead: deleted), ``failed`` or ``retry`` (sent again in
a retry batch, whose row has its next answer).  A batch stores its distinct labels once and
one byte per planned registration (the order of ``batches.installation_ids``) indexing
them, so a recipient costs one byte beyond the id the batch already holds.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DELIVERED = "delivered"
INVALID = "invalid"
FAILED = "failed"
RETRY = "retry"
OUTCOMES = (DELIVERED, INVALID, FAILED)  # what the results route shows and filters by

MAX_LABELS = 255  # one byte per recipient
OVERFLOW = "failed/other"  # the 255th label when a batch had more distinct answers
GONE = "failed/gone"  # planned, but deleted or disabled before the send


def label(outcome: str, reason: str) -> str:
    return f"{outcome}/{reason}"


def split(value: str) -> tuple[str, str]:
    """(outcome, reason) of a label."""
    outcome, _, reason = value.partition("/")
    return outcome, reason


@dataclass(frozen=True, slots=True)
class Encoded:
    labels: list[str]
    codes: bytes


def encode(
    planned: Iterable[int],
    loaded: Iterable[int],
    answers: Mapping[int, str],
    blanket: str | None,
) -> Encoded:
    """``planned``: the batch's installation ids in ledger order; ``loaded``: those the
    claim found (still registered and enabled); ``answers``: label per answered id;
    ``blanket``: the label of loaded ids without an answer (the whole batch decided
    without sending: cancelled, expired, a sender error), ``failed/gone`` otherwise."""
    present = set(loaded)
    index: dict[str, int] = {}
    codes = bytearray()
    for iid in planned:
        value = answers.get(iid) or (blanket if iid in present and blanket else GONE)
        code = index.get(value)
        if code is None:
            if len(index) >= MAX_LABELS - 1 and value != OVERFLOW:
                value = OVERFLOW
                code = index.get(value)
            if code is None:
                code = index[value] = len(index)
        codes.append(code)
    return Encoded(list(index), bytes(codes))
