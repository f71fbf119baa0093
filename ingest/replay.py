"""`python -m ingest.replay`: put webhooks through ingest's normalization (`ingest.publish.records_for`) again.

    python -m ingest.replay --tenant acme [FILE]
        captured webhooks -> raw archive + normalized topics (or dead letters)
    python -m ingest.replay --from-raw [--since T] [--tenant acme]
        the raw archive -> normalized topics
    python -m ingest.replay --post URL --tenant acme --secret S [FILE]
        each webhook over HTTP to a running ingest endpoint (base URL)

FILE is JSON Lines, `{"kind": ..., "body": {...}, "received_at": "<ISO 8601>"?}` per line; default: the
bundled sample. Event ids depend only on tenant, kind and body, so a replay writes the ids of the first run
again and downstream deduplication drops the copies. `--from-raw` keeps each record's tenant, kind, body and
received_at, and does not archive again (the records are in the archive already). Kafka settings come from
the environment like ingest's (KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL, INGEST_KAFKA_TIMEOUT_S).

Exit status: 0 done, 1 failed (unreadable input, Kafka, webhooks not accepted), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from broker.config import consumer_config
from broker.producer import AsyncProducer, DeliveryError
from ingest.auth import SECRET_HEADER
from ingest.publish import Webhook, Write, records_for
from ingest.settings import from_env
from runtime import retry
from schemas import exact_json, topics
from schemas.codec import Codec, CodecError, codec_from_settings

SAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "sample" / "webhooks.jsonl"
BATCH = 500  # webhooks per round of Kafka acknowledgements: bounded memory, librdkafka still batches well
REPLAY_HEADERS = {"content-type": "application/json", "user-agent": "callpipe-replay"}


class ReplayError(RuntimeError):
    """An expected failure, reported in one line."""


@dataclass(frozen=True)
class Captured:
    kind: str
    body: Any
    received_at: datetime | None

    @property
    def payload(self) -> bytes:
        return exact_json.dumps(self.body)


def read_captured(path: Path) -> list[Captured]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    captured = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            captured.append(_captured(line, f"{path}:{number}"))
    return captured


def _captured(line: str, where: str) -> Captured:
    try:
        item = exact_json.loads(line.encode())
    except ValueError as exc:
        raise ReplayError(f"{where}: not JSON: {exc}") from None
    if not isinstance(item, dict) or "kind" not in item or "body" not in item:
        raise ReplayError(f'{where}: expected an object with "kind" and "body"')
    if item["kind"] not in topics.KIND_TOPICS:
        raise ReplayError(f"{where}: unknown kind {item['kind']!r}")
    received = item.get("received_at")
    if received is None:
        return Captured(item["kind"], item["body"], None)
    try:
        moment = datetime.fromisoformat(received)
    except (TypeError, ValueError):
        raise ReplayError(f"{where}: received_at {received!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ReplayError(f"{where}: received_at {received!r} has no UTC offset")
    return Captured(item["kind"], item["body"], moment)


@dataclass
class Tally:
    normalized: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    def count(self, error: str | None) -> None:
        if error is None:
            self.normalized += 1
        else:
            self.dead_lettered += 1


async def replay_captured(
    items: Iterable[Captured], tenant: str, producer: AsyncProducer, codec: Codec, timeout: float
) -> Tally:
    tally = Tally()
    for chunk in _batched(items, BATCH):
        writes: list[Write] = []
        for item in chunk:
            received = item.received_at or datetime.now(UTC)
            webhook = Webhook(tenant, item.kind, item.payload, received, REPLAY_HEADERS)
            outcome = records_for(webhook, item.body, codec)
            tally.count(outcome.error)
            writes += outcome.writes
        await producer.send_all(writes, timeout)
    return tally


def _batched(items: Iterable[Captured], size: int) -> Iterator[list[Captured]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class RawArchive:
    """The raw-archive records from `since` (or the beginning) up to the end the topic had when opened: a
    replay must not chase the records written meanwhile (live traffic)."""

    def __init__(self, bootstrap: str, since: datetime | None) -> None:
        group = f"callpipe-replay-{uuid.uuid4().hex}"  # never joined nor committed: partitions are assigned
        self._consumer = Consumer(consumer_config(bootstrap, group, log_level=0))
        self._ends: dict[int, int] = {}  # partition -> offset after its last record at open time
        try:
            self._assign(bootstrap, since)
        except KafkaException as exc:
            self.close()
            raise ReplayError(f"Kafka at {bootstrap}: {exc.args[0].str()}") from None
        except ReplayError:
            self.close()
            raise

    def _assign(self, bootstrap: str, since: datetime | None) -> None:
        name = topics.RAW.name
        meta = self._consumer.list_topics(name, timeout=10).topics[name]
        if meta.error is not None or not meta.partitions:
            raise ReplayError(f"topic {name} does not exist on {bootstrap}")
        partitions = [TopicPartition(name, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        if since is not None:
            millis = int(since.timestamp() * 1000)
            partitions = self._consumer.offsets_for_times(
                [TopicPartition(name, tp.partition, millis) for tp in partitions], timeout=10
            )
        assigned = []
        for tp in partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            start = low if since is None else tp.offset  # offsets_for_times: -1 when no record is that recent
            if 0 <= start < high:
                assigned.append(TopicPartition(name, tp.partition, start))
                self._ends[tp.partition] = high
        self._consumer.assign(assigned)

    async def batches(self, size: int, idle_timeout: float = 30.0) -> AsyncIterator[list[Message]]:
        idle_since = asyncio.get_running_loop().time()
        while self._ends:
            messages = await asyncio.to_thread(self._consumer.consume, size, 1.0)
            batch = []
            for msg in messages:
                error = msg.error()
                if error is not None:
                    raise ReplayError(f"reading {topics.RAW.name}: {error.str()}")
                end = self._ends.get(msg.partition() or 0)
                if end is not None and (msg.offset() or 0) < end:
                    batch.append(msg)
            # Positions rather than the last offset seen: the last offset may hold no deliverable record.
            positions = self._consumer.position([TopicPartition(topics.RAW.name, p) for p in self._ends])
            for tp in positions:
                if tp.offset >= self._ends[tp.partition]:
                    del self._ends[tp.partition]
            if batch:
                idle_since = asyncio.get_running_loop().time()
                yield batch
            elif asyncio.get_running_loop().time() - idle_since > idle_timeout:
                raise ReplayError(f"no records from {topics.RAW.name} for {idle_timeout:.0f}s before its end")

    def close(self) -> None:
        self._consumer.close()


async def replay_raw(
    archive: RawArchive, codec: Codec, tenant: str | None, producer: AsyncProducer, timeout: float
) -> Tally:
    tally = Tally()
    async for chunk in archive.batches(BATCH):
        writes: list[Write] = []
        for msg in chunk:
            webhook = _archived_webhook(msg, codec, tenant)
            if webhook is None:
                tally.skipped += 1
                continue
            outcome = records_for(webhook, exact_json.loads(webhook.body), codec)
            tally.count(outcome.error)
            writes += [w for w in outcome.writes if w[0] != topics.RAW.name]
        await producer.send_all(writes, timeout)
    return tally


def _archived_webhook(msg: Message, codec: Codec, tenant: str | None) -> Webhook | None:
    """The webhook an archive record holds, or None for records this replay leaves alone: another tenant's
    (checked on the Kafka header, before decoding) and bodies that were not JSON (they would only be
    dead-lettered again)."""
    if tenant is not None and dict(msg.headers() or []).get("tenant") != tenant.encode():
        return None
    value = msg.value()
    if value is None:
        return None
    try:
        record = codec.decode(topics.RAW.name, value)
    except CodecError as exc:
        where = f"{topics.RAW.name} partition {msg.partition()} offset {msg.offset()}"
        raise ReplayError(f"{where}: {exc}") from None
    if record["event_id"] is None or record["kind"] not in topics.KIND_TOPICS:
        return None
    return Webhook(
        record["tenant"],
        record["kind"],
        record["body"],
        record["received_at"],
        record["headers"],
        record["remote_addr"],
    )


async def post_captured(
    items: Sequence[Captured], url: str, tenant: str, secret: str, concurrency: int = 8
) -> Counter[str]:
    """POST every webhook to `url` (the ingest base URL) with `concurrency` requests in flight, in file
    order; returns how many answers each status had ("error" when no answer came)."""
    statuses: Counter[str] = Counter()
    pending: Iterator[Captured] = iter(items)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"),
        limits=limits,
        timeout=30.0,
        headers={SECRET_HEADER: secret, "content-type": "application/json"},
    ) as client:

        async def worker() -> None:
            for item in pending:  # one shared iterator: each webhook is taken by exactly one worker
                statuses[await _post(client, f"/hooks/{tenant}/{item.kind}", item.payload)] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def _post(client: httpx.AsyncClient, path: str, payload: bytes) -> str:
    answer: httpx.Response | None = await retry.http_delivery(httpx.TransportError)(client.post, path, content=payload)
    return "error" if answer is None else str(answer.status_code)


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest.replay",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "file", nargs="?", type=Path, help="JSON Lines of captured webhooks (default: the sample)"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--from-raw", action="store_true", help="replay the raw archive topic instead of a file"
    )
    mode.add_argument("--post", metavar="URL", help="POST each webhook to the ingest endpoint at URL")
    parser.add_argument(
        "--tenant", help="tenant of the webhooks (with --from-raw: only this tenant's records)"
    )
    parser.add_argument(
        "--since",
        type=_since,
        help="with --from-raw: records archived at or after this time (ISO 8601; UTC when no offset)",
    )
    parser.add_argument("--secret", help="with --post: the tenant's secret")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="with --post: requests in flight (default 8)"
    )
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.from_raw and args.file is not None:
        parser.error("--from-raw reads the archive topic: give no file")
    if not args.from_raw and args.tenant is None:
        parser.error("--tenant is required to replay a file")
    if args.since is not None and not args.from_raw:
        parser.error("--since only applies to --from-raw")
    if (args.post is None) != (args.secret is None):
        parser.error("--post and --secret go together")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")


async def _to_kafka(args: argparse.Namespace) -> str:
    settings = from_env()
    codec = codec_from_settings(settings.schema_registry_url)
    timeout = settings.kafka_timeout_s
    # Open the input first: a wrong file or an unreachable archive fails before anything is produced.
    archive = RawArchive(settings.kafka_bootstrap, args.since) if args.from_raw else None
    items = [] if args.from_raw else read_captured(args.file or SAMPLE)
    # librdkafka's own log lines would repeat what the one-line error below says.
    producer = AsyncProducer(settings.kafka_bootstrap, int(timeout * 1000), log_level=0)
    try:
        if archive is not None:
            tally = await replay_raw(archive, codec, args.tenant, producer, timeout + 1)
            source = f"{topics.RAW.name} records"
        else:
            tally = await replay_captured(items, args.tenant, producer, codec, timeout + 1)
            source = f"webhooks of {args.file or SAMPLE} for tenant {args.tenant}"
    except DeliveryError as exc:
        raise ReplayError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None
    finally:
        if archive is not None:
            archive.close()
        await asyncio.to_thread(producer.close)
    total = tally.normalized + tally.dead_lettered
    skipped = f", {tally.skipped} skipped" if archive is not None else ""
    outcome = f"{tally.normalized} normalized, {tally.dead_lettered} dead-lettered{skipped}"
    return f"replayed {total} {source}: {outcome}"


async def _over_http(args: argparse.Namespace) -> tuple[str, bool]:
    items = read_captured(args.file or SAMPLE)
    statuses = await post_captured(items, args.post, args.tenant, args.secret, args.concurrency)
    accepted = sum(n for status, n in statuses.items() if status.startswith("2"))
    by_status = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    summary = f"sent {len(items)}, accepted {accepted}, rejected {len(items) - accepted} ({by_status})"
    return summary, accepted == len(items)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    try:
        if args.post is not None:
            summary, ok = asyncio.run(_over_http(args))
        else:
            summary, ok = asyncio.run(_to_kafka(args)), True
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
