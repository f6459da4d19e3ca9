"""The audience estimate: what a send target would reach, per platform, without sending.

It takes the send path's own rules: the target's kind check (:meth:`Target.kind`), the
platforms a send would go to (:func:`pushcore.fanout.submit.send_platforms`), the list
values as the planner resolves them (:func:`pushcore.fanout.planning.list_values`) and the
planner's statements turned into counts (:mod:`pushcore.db.audience`).  An estimate is a
snapshot: registrations added, refreshed or deleted before the send is planned change what
the send reaches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pushcore.db import audience
from pushcore.db.pool import Pool, Record
from pushcore.endpoints import EndpointPolicy
from pushcore.fanout import raw_tokens
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.planning import list_values
from pushcore.fanout.submit import send_platforms
from pushcore.fanout.targets import Target, TargetKind


@dataclass(frozen=True, slots=True)
class Estimate:
    platforms: dict[str, int]  # every platform the send would go to, 0 included

    @property
    def total(self) -> int:
        return sum(self.platforms.values())


async def estimate(
    pool: Pool,
    app: Record,
    target: Target,
    *,
    platforms: Sequence[str] | None = None,
    primary_only: bool = False,
    policy: EndpointPolicy | None = None,
) -> Estimate:
    """Count the installations a send with this target, platforms and ``primary_only``
    would be planned for; :class:`InvalidSend` for what the send route would refuse (a
    raw-token entry too, checked against the Web Push endpoint ``policy`` when given)."""
    try:
        kind = target.kind()
    except ValueError as exc:
        raise InvalidSend("target", str(exc)) from None
    wanted = send_platforms(platforms, app)
    if kind is TargetKind.RECIPIENTS:  # planned as its user list (see submit)
        target = target.users()
        kind = TargetKind.EXTERNAL_USER_IDS
    if kind is TargetKind.TOKENS:
        # the distinct raw tokens per platform: no registry lookup (an entry the send
        # would refuse is an InvalidSend naming it here too)
        assert target.tokens is not None
        counts: dict[str, int] = Counter(
            a.platform for a in raw_tokens.addresses(target.tokens, policy)
        )
    elif kind in (TargetKind.ALL, TargetKind.TAGS):
        counts = await audience.count_keyset(
            pool,
            app_id=app["id"],
            platforms=wanted,
            tags=target.tags,
            match_all=target.match == "all",
            primary_only=primary_only,
        )
    else:
        counts = await audience.count_list(
            pool,
            app_id=app["id"],
            kind=kind.value,
            values=list_values(kind, target),
            platforms=wanted,
            primary_only=primary_only,
        )
    return Estimate({p: counts.get(p, 0) for p in wanted})
