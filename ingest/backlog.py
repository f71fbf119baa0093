"""Admission by backlog: while the pipeline behind ingest is more than `INGEST_MAX_BACKLOG` messages behind,
webhooks are refused with 503 + Retry-After instead of accepted into a queue that only grows. Offered more than
the pipeline carries, ingest then keeps it at its sustained rate with a bounded delay, and the provider (who
retries a 5xx) holds the rest. The lag is measured from the outside (broker/lag.py), every
`INGEST_BACKLOG_INTERVAL_S`, for the streams app's group over the input topics and the sink's group over every
contract topic; the larger total counts. Off (0) by default: a pipeline that is meant to catch up on a backlog
(a replay, a consumer started late) must not be refused."""

from __future__ import annotations

import logging

from broker.lag import Lag, LagMonitor
from ingest.body import BadRequest
from schemas import topics

log = logging.getLogger("callpipe.ingest")


class Backlog:
    def __init__(self, bootstrap: str, limit: int, interval_s: float, streams_group: str, sink_group: str) -> None:
        self.limit = limit
        self.behind = 0
        """Messages not yet consumed, at the last measurement."""
        self.monitor = LagMonitor(bootstrap, {
            streams_group: [t.name for t in topics.INPUT_TOPICS],
            sink_group: [t.name for t in topics.ALL_TOPICS],
        }, interval_s, self.measured)

    def measured(self, lags: list[Lag]) -> None:
        by_group: dict[str, int] = {}
        for lag in lags:
            by_group[lag.group_id] = by_group.get(lag.group_id, 0) + lag.lag
        behind, was = max(by_group.values(), default=0), self.behind
        self.behind = behind
        if (behind > self.limit) != (was > self.limit):
            log.warning("refusing webhooks: the pipeline is behind" if behind > self.limit else
                        "accepting webhooks again", extra={"behind": behind, "limit": self.limit})

    def refusal(self) -> BadRequest | None:
        if self.behind <= self.limit:
            return None
        return BadRequest(503, "backlogged", f"the pipeline is {self.behind} messages behind (the limit is "
                                             f"{self.limit}); retry later")
