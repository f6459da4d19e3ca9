"""The per-recipient results encoding (pure): one byte per planned registration."""

from __future__ import annotations

from pushcore.fanout import results


def test_codes_follow_the_ledger_order_and_fill_gaps() -> None:
    encoded = results.encode(
        planned=[5, 3, 9, 7],
        loaded=[3, 5, 7],
        answers={5: "delivered/ok", 3: "invalid/Unregistered"},
        blanket=None,
    )
    labels = [encoded.labels[c] for c in encoded.codes]
    # 9 was not loaded (deleted since planning); 7 was loaded but has no answer
    assert labels == ["delivered/ok", "invalid/Unregistered", "failed/gone", "failed/gone"]
    blanket = results.encode([1, 2], [1], {}, "failed/message_cancelled")
    assert [blanket.labels[c] for c in blanket.codes] == ["failed/message_cancelled", "failed/gone"]


def test_more_than_255_distinct_answers_share_one_label() -> None:
    planned = list(range(300))
    encoded = results.encode(planned, planned, {i: f"failed/http-{i}" for i in planned}, None)
    assert len(encoded.codes) == 300
    assert len(encoded.labels) == results.MAX_LABELS
    assert encoded.labels[-1] == results.OVERFLOW
    assert [encoded.labels[c] for c in encoded.codes[254:]] == [results.OVERFLOW] * 46
    assert results.split("failed/retries_exhausted:http-503") == (
        "failed",
        "retries_exhausted:http-503",
    )
