"""Prometheus metrics of the ingest endpoint, on a registry of its own so that several apps (tests) can coexist."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "callpipe_ingest_requests", "Webhook requests by kind and HTTP status", ["kind", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "callpipe_ingest_request_seconds", "Time from request to answer", ["kind"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.delivery_errors = Counter(
            "callpipe_ingest_kafka_delivery_errors", "Writes that Kafka did not acknowledge", registry=self.registry,
        )
        self.dead_letters = Counter(
            "callpipe_ingest_dead_letters", "Payloads written to the dead-letter topic", ["kind"],
            registry=self.registry,
        )
        self.unexpected_errors = Counter(
            "callpipe_ingest_unexpected_errors",
            "Webhooks dead-lettered because normalizing or encoding them raised an unexpected exception (a defect)",
            ["kind"], registry=self.registry,
        )
        self.backlog = Gauge("callpipe_ingest_backlog",
                             "Messages the pipeline is behind, at the last measurement (INGEST_MAX_BACKLOG)",
                             registry=self.registry)
        self.in_flight = Gauge("callpipe_ingest_in_flight", "Requests being handled", registry=self.registry)
