"""`make run`: the whole pipeline on this machine, on the embedded ClickHouse.

Starts Kafka and the schema registry (unless KAFKA_BOOTSTRAP_SERVERS points at a cluster), creates the topics,
starts the sink (which owns the embedded ClickHouse and serves ad-hoc SQL), the streams worker and ingest, posts
the bundled sample through HTTP, prints what landed, then serves until Ctrl-C and stops everything it started.
"""

from __future__ import annotations

import subprocess
import sys
import time

from deploy.local import settings as stack_settings
from deploy.local import stack
from deploy.local.services import Services, create_topics, service_env
from sinks.schema.tables import catalog

SAMPLE = stack.ROOT / "deploy" / "sample" / "webhooks.jsonl"


def counts_sql() -> str:
    views = [spec.view for spec in catalog().tables if spec.view]
    return " UNION ALL ".join(f"SELECT '{view}' AS view, count() AS rows FROM {view}" for view in views)


def wait_for_rows(services: Services, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(services.scalar(f"SELECT sum(rows) FROM ({counts_sql()})")) > 0:
            return
        time.sleep(0.5)
    raise stack.StackError(f"no row reached ClickHouse within {timeout:.0f}s: read the logs in {services.data}/logs")


def main() -> int:
    settings = stack_settings.from_env()
    data = settings.data
    started = time.monotonic()
    bootstrap, registry = settings.external_bootstrap, settings.external_registry
    services: Services | None = None
    started_stack = False
    stack.interrupt_on_sigterm()
    try:
        if not bootstrap:
            stack.down(data)  # a previous run killed hard may have left its JVMs
            running = stack.up(data, settings.kafka_port, settings.controller_port, settings.registry_port)
            started_stack = True
            bootstrap, registry = running.bootstrap, registry or running.registry_url
        stack.say(f"topics: {len(create_topics(bootstrap))} created")
        services = Services(data, service_env(data, bootstrap, registry))
        services.start_all()
        tenant, secret = services.env["INGEST_TENANTS"].split(",")[0].split(":", 1)
        stack.say(f"replaying the bundled sample {SAMPLE.relative_to(stack.ROOT)} through {services.ingest_url}")
        subprocess.run([sys.executable, "-m", "ingest.replay", "--post", services.ingest_url, "--tenant", tenant,
                        "--secret", secret, str(SAMPLE)], env=services.env, check=True)
        wait_for_rows(services, timeout=60)
        stack.say(f"first rows visible in ClickHouse {time.monotonic() - started:.1f}s after start")
        time.sleep(5)  # the streams stage emits its records a moment after the normalized events land
        print(services.query(f"SELECT * FROM ({counts_sql()}) ORDER BY view", "Pretty"), flush=True)
        stack.say(f"serving: webhooks at {services.ingest_url}/hooks/{tenant}/<secret>/<kind>; ad-hoc SQL: "
                  f'.venv/bin/python -m sinks.tools.sql "SELECT * FROM v_calls LIMIT 5"; Ctrl-C stops everything')
        while not services.dead():
            time.sleep(1)
        raise stack.StackError(f"{', '.join(services.dead())} stopped unexpectedly: read {data / 'logs'}")
    except KeyboardInterrupt:
        stack.say("stopping")
        return 0
    except (stack.StackError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if services is not None:
            services.stop()
        if started_stack:
            stack.down(data)


if __name__ == "__main__":
    sys.exit(main())
