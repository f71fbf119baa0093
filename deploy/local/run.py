"""`make run`: the whole pipeline on this machine, on the embedded ClickHouse.

Starts Kafka and the schema registry (unless KAFKA_BOOTSTRAP_SERVERS points at a cluster), creates the topics,
starts the sink (which owns the embedded ClickHouse and serves ad-hoc SQL), the streams worker and ingest, posts
the bundled sample through HTTP, prints what landed, then serves until Ctrl-C and stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from broker.admin import TopicSpec, ensure_topics
from deploy.local import stack
from schemas import topics
from sinks.query_server import DEFAULT_PORT, HOST
from sinks.sql import ask_server
from sinks.tables import catalog

ROOT = stack.ROOT
SAMPLE = ROOT / "deploy" / "sample" / "webhooks.jsonl"


@dataclass
class Pipeline:
    data: Path
    env: dict[str, str]
    started_stack: bool = False
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def spawn(self, name: str, module: str) -> None:
        log = self.data / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", module], stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env, cwd=ROOT, start_new_session=True)
        self.children.append((name, proc))
        stack.say(f"{name}: started (pid {proc.pid}, log {log})")

    def wait_http(self, name: str, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        proc = dict(self.children)[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise stack.StackError(f"{name} exited with code {proc.returncode}: read {self.data / 'logs' / name}.log")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        stack.say(f"{name}: ready")
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise stack.StackError(f"{name} not ready within {timeout:.0f}s: read {self.data / 'logs' / name}.log")

    def stop(self) -> None:
        for name, proc in reversed(self.children):
            stack.stop_pid(proc.pid, grace=15)
            stack.say(f"{name}: stopped")
        if self.started_stack:
            stack.down(self.data)


def _counts_sql() -> str:
    views = [spec.view for spec in catalog().tables if spec.view]
    return " UNION ALL ".join(f"SELECT '{view}' AS view, count() AS rows FROM {view}" for view in views)


def wait_for_rows(sink_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = ask_server(sink_url, f"SELECT sum(rows) FROM ({_counts_sql()})", "TSV")
        if answer and int(answer.split()[-1]) > 0:  # TSV with a header line
            return
        time.sleep(0.5)
    raise stack.StackError(f"no row reached ClickHouse within {timeout:.0f}s: read the logs in .data/logs")


def landed(sink_url: str) -> str:
    """What landed, as an analyst sees it: rows per view (latest versions only)."""
    answer = ask_server(sink_url, f"SELECT * FROM ({_counts_sql()}) ORDER BY view", "Pretty")
    return (answer or b"").decode()


def _env(data: Path, bootstrap: str, registry: str | None) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"}
    env.setdefault("CLICKHOUSE_URL", f"chdb://{(data / 'clickhouse').resolve()}")
    env.setdefault("STREAMS_DATA_DIR", str((data / "streams").resolve()))
    env.setdefault("INGEST_TENANTS", "demo:demo-secret-change-me")
    if registry:
        env["SCHEMA_REGISTRY_URL"] = registry
    return env


def main() -> int:
    data = Path(os.environ.get("CALLPIPE_DATA", ROOT / ".data")).resolve()
    t0 = time.monotonic()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    registry = os.environ.get("SCHEMA_REGISTRY_URL")
    pipeline = Pipeline(data, {})
    # SIGTERM (e.g. from a supervisor) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not bootstrap:
            stack.down(data)  # a previous run killed hard may have left its JVMs
            running = stack.up(data, int(os.environ.get("KAFKA_PORT", "9092")),
                               int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
                               None if os.environ.get("CALLPIPE_NO_REGISTRY") else
                               int(os.environ.get("SCHEMA_REGISTRY_PORT", "8081")))
            pipeline.started_stack = True
            bootstrap, registry = running.bootstrap, registry or running.registry_url
        pipeline.env = _env(data, bootstrap, registry)
        from streams.app import internal_topics

        created = ensure_topics(bootstrap, [TopicSpec(t.name, t.partitions) for t in topics.ALL_TOPICS]
                                + internal_topics())
        stack.say(f"topics: {len(created)} created")
        pipeline.spawn("sink", "sinks")
        pipeline.spawn("streams", "streams")
        pipeline.spawn("ingest", "ingest")
        ingest_url = f"http://127.0.0.1:{pipeline.env.get('INGEST_PORT', '8080')}"
        sink_url = f"http://{HOST}:{pipeline.env.get('SINK_QUERY_PORT', DEFAULT_PORT)}"
        pipeline.wait_http("sink", f"{sink_url}/health")
        pipeline.wait_http("ingest", f"{ingest_url}/readyz")
        tenant, secret = pipeline.env["INGEST_TENANTS"].split(",")[0].split(":", 1)
        stack.say(f"replaying the bundled sample {SAMPLE.relative_to(ROOT)} through {ingest_url}")
        subprocess.run([sys.executable, "-m", "ingest.replay", "--post", ingest_url, "--tenant", tenant,
                        "--secret", secret, str(SAMPLE)], env=pipeline.env, check=True)
        wait_for_rows(sink_url, timeout=60)
        stack.say(f"first rows visible in ClickHouse {time.monotonic() - t0:.1f}s after start")
        time.sleep(5)  # let the streams stage emit its records too
        print(landed(sink_url), flush=True)
        stack.say(f"serving: webhooks at {ingest_url}/hooks/{tenant}/<secret>/<kind>, "
                  f"ad-hoc SQL with `.venv/bin/python -m sinks.sql \"SELECT ...\"`; Ctrl-C stops everything")
        while all(proc.poll() is None for _, proc in pipeline.children):
            time.sleep(1)
        dead = [name for name, proc in pipeline.children if proc.poll() is not None]
        raise stack.StackError(f"{', '.join(dead)} stopped unexpectedly: read {data / 'logs'}")
    except KeyboardInterrupt:
        stack.say("Ctrl-C: stopping")
        return 0
    except (stack.StackError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        pipeline.stop()


if __name__ == "__main__":
    sys.exit(main())
