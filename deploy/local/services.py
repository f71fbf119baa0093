"""The three callpipe services as child processes: start, wait until they answer, kill, restart, stop.

Used by `make run` (deploy/local/run.py) and by the end-to-end tests, so both run the pipeline the same way.
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

from broker.admin import callpipe_topics, ensure_topics
from deploy.local import stack
from runtime.env import inherited
from schemas import topics
from sinks.tools.sql import ask_server

MODULES = {"sink": "sinks", "streams": "streams", "ingest": "ingest"}


def service_env(data: Path, bootstrap: str, registry: str | None, **overrides: str) -> dict[str, str]:
    """The environment of every service: the caller's, plus where Kafka, the registry and ClickHouse are."""
    env = inherited({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PYTHONUNBUFFERED": "1"})
    env.setdefault("CLICKHOUSE_URL", f"chdb://{(data / 'clickhouse').resolve()}")
    env.setdefault("STREAMS_DATA_DIR", str((data / "streams").resolve()))
    env.setdefault("INGEST_TENANTS", "demo:demo-secret-change-me")
    if registry:
        env["SCHEMA_REGISTRY_URL"] = registry
    env.update(overrides)
    return env


def create_topics(bootstrap: str, app_id: str = topics.STREAMS_APP_ID) -> list[str]:
    return ensure_topics(bootstrap, callpipe_topics(app_id))


@dataclass
class Services:
    data: Path
    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.env.get('INGEST_PORT', '8080')}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.env.get('SINK_QUERY_PORT', '8124')}"

    def log(self, name: str) -> Path:
        return self.data / "logs" / f"{name}.log"

    def spawn(self, name: str, module: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start a service; `name` may be a second instance (e.g. "streams-2" with module "streams")."""
        proc = stack.spawn([sys.executable, "-m", module or MODULES[name]], self.log(name),
                           {**self.env, **env}, cwd=stack.ROOT)
        self.children[name] = proc
        stack.say(f"{name}: started (pid {proc.pid}, log {self.log(name)})")
        return proc

    def wait_http(self, name: str, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        proc = self.children[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise stack.StackError(f"{name} exited with code {proc.returncode}: read {self.log(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        stack.say(f"{name}: ready")
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise stack.StackError(f"{name} not ready within {timeout:.0f}s: read {self.log(name)}")

    def start_all(self) -> None:
        self.spawn("sink")
        self.spawn("streams")
        self.spawn("ingest")
        self.wait_http("sink", f"{self.sink_url}/health")
        self.wait_http("ingest", f"{self.ingest_url}/readyz")

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would: no flush, no commit, no close."""
        proc = self.children.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stack.say(f"{name}: killed")

    def query(self, sql: str, fmt: str = "TSV") -> str:
        answer = ask_server(self.sink_url, sql, fmt)
        if answer is None:
            raise stack.StackError(f"the sink's query server does not answer: read {self.log('sink')}")
        return answer.decode()

    def scalar(self, sql: str) -> str:
        return self.query(sql).splitlines()[-1]  # TSV with a header line

    def dead(self) -> list[str]:
        return [name for name, proc in self.children.items() if proc.poll() is not None]

    def stop(self) -> None:
        for name, proc in reversed(list(self.children.items())):
            stack.stop_pid(proc.pid, grace=15)
            stack.say(f"{name}: stopped")
        self.children.clear()
