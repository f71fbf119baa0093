"""`python -m deploy.local.stack up` leaves the broker running after the command ends, until `down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from deploy.local.stack import ROOT, free_port, stop_pid

pytestmark = pytest.mark.integration


def stack(command: str, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.local.stack", command, "--no-registry", "--data", str(data)],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=180, check=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_keeps_the_broker_running_after_the_command_until_down() -> None:
    data = Path(tempfile.mkdtemp(prefix="callpipe-stack-up-"))
    env = {"KAFKA_PORT": str(free_port()), "KAFKA_CONTROLLER_PORT": str(free_port())}
    started = stack("up", data, env)
    assert started.returncode == 0, started.stderr
    running = json.loads(started.stdout.splitlines()[-1])  # after the progress lines
    try:
        # A broker tied to its starter gets SIGTERM as `up` exits and is gone within ~2 s of a clean shutdown.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and alive(running["kafka_pid"]):
            time.sleep(0.5)
        assert alive(running["kafka_pid"]), "the broker died with the `up` command"
        meta = AdminClient({"bootstrap.servers": running["bootstrap"]}).list_topics(timeout=10)
        assert meta.brokers
        stopped = stack("down", data, env)
        assert stopped.returncode == 0, stopped.stderr
        assert not alive(running["kafka_pid"]) and not (data / "stack.json").exists()
    finally:
        stop_pid(running["kafka_pid"])
