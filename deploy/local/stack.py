"""The local stack: a single-node Apache Kafka (KRaft) broker and an Apicurio schema registry, both run from
jars that Maven fetches from Maven Central into the ignored `.cache/` folder (this machine has no Docker engine).

    python -m deploy.local.stack fetch      # idempotent; reuses what was fetched
    python -m deploy.local.stack up         # start both, wait until they answer, print their addresses;
                                            # they keep running after the command ends
    python -m deploy.local.stack down       # stop what `up` started

Failures end with one line naming what to do or which log file to read, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from deploy.local import settings as stack_settings
from deploy.local.settings import ROOT as ROOT  # the repository root, for the callers of the stack
from runtime.env import inherited

HERE = Path(__file__).resolve().parent
PR_SET_PDEATHSIG = 1  # linux/prctl.h
KAFKA_VERSION = "4.1.1"
REGISTRY_VERSION = "3.0.9"
REGISTRY_ARTIFACT = f"io.apicurio:apicurio-registry-app:{REGISTRY_VERSION}:zip:all"


class StackError(RuntimeError):
    """A start-up failure explained in one line."""


def cache_dir() -> Path:
    return stack_settings.cache_dir()


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise StackError(f"{tool} not found on PATH: {hint}")
    return path


def _mvn(args: list[str], log: Path) -> None:
    mvn = _require("mvn", "install Maven (apt-get install maven)")
    _require("java", "install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [mvn, "-B", "-q", f"-Dmaven.repo.local={cache_dir() / 'm2'}", *args]
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StackError(f"Maven failed (exit {done.returncode}): read {log}")


def kafka_libs() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def registry_dir() -> Path:
    return cache_dir() / f"apicurio-{REGISTRY_VERSION}"


def fetch(with_registry: bool = True) -> None:
    libs = kafka_libs()
    if (libs / ".complete").exists():
        say(f"Kafka {KAFKA_VERSION}: using {libs}")
    else:
        say(f"Kafka {KAFKA_VERSION}: fetching the broker and its dependencies from Maven Central ...")
        _mvn(
            ["-f", str(HERE / "kafka-pom.xml"), f"-Dkafka.version={KAFKA_VERSION}",
             "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
            cache_dir() / "logs" / "mvn-kafka.log",
        )
        (libs / ".complete").touch()
        say(f"Kafka {KAFKA_VERSION}: {len(list(libs.glob('*.jar')))} jars in {libs}")
    if not with_registry:
        return
    target = registry_dir()
    if (target / ".complete").exists():
        say(f"Apicurio Registry {REGISTRY_VERSION}: using {target}")
        return
    say(f"Apicurio Registry {REGISTRY_VERSION}: fetching from Maven Central (about 200 MB, once) ...")
    download = cache_dir() / "downloads"
    _mvn(["dependency:copy", f"-Dartifact={REGISTRY_ARTIFACT}", f"-DoutputDirectory={download}"],
         cache_dir() / "logs" / "mvn-registry.log")
    zipped = download / f"apicurio-registry-app-{REGISTRY_VERSION}-all.zip"
    shutil.rmtree(target, ignore_errors=True)
    shutil.unpack_archive(zipped, target)
    zipped.unlink()
    (target / ".complete").touch()


@dataclass
class Running:
    """What `up` started, written to <data>/stack.json so that `down` (or a later run) can find it."""

    bootstrap: str
    kafka_pid: int
    kafka_log: str
    registry_url: str | None = None
    registry_pid: int | None = None
    registry_log: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_port_free(port: int, what: str, env_name: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port {port} on 127.0.0.1 is in use, so {what} cannot start: stop what holds it or set {env_name}"
            ) from None


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} while starting: read {log}")
        if ready():
            return
        time.sleep(0.25)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s: read {log}")


def _kafka_ready(bootstrap: str) -> Callable[[], bool]:
    def ready() -> bool:
        from confluent_kafka.admin import AdminClient  # imported late: `fetch` must run without the venv

        host, port = bootstrap.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return False  # not listening yet: asking librdkafka now would only fill the terminal with its retries
        try:
            meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
        except Exception:
            return False
        return bool(meta.brokers)

    return ready


def _http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    return ready


def _interrupt(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM (a supervisor's stop, a `kill`) interrupts like Ctrl-C, so the caller's clean-up stops its services
    before the broker they wait for. Without it they die with it by SIGTERM, all at once, and a service that waits
    for a broker that is gone outlives its caller."""
    signal.signal(signal.SIGTERM, _interrupt)


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM when the process that started it dies, so a
    `make run` or test session killed hard (SIGKILL, a crash) leaves no broker or service behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, outlive_caller: bool = False) -> subprocess.Popen[bytes]:
    """Start a child in a session of its own, output appended to `log`. Its own session: Ctrl-C in the terminal
    reaches only our orchestrator, which stops the children in order. It dies with its caller unless
    `outlive_caller` (the `up` command, whose children run until `down`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=inherited(env), cwd=cwd,
                                preexec_fn=None if outlive_caller else die_with_parent)


def start_kafka(data: Path, port: int, controller_port: int,
                outlive_caller: bool = False) -> tuple[str, subprocess.Popen[bytes], Path]:
    java = _require("java", "install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    _check_port_free(port, "Kafka", "KAFKA_PORT")
    _check_port_free(controller_port, "the Kafka controller", "KAFKA_CONTROLLER_PORT")
    kdir = data / "kafka"
    kdir.mkdir(parents=True, exist_ok=True)
    props = kdir / "server.properties"
    props.write_text(
        (HERE / "server.properties.template").read_text()
        .replace("@PORT@", str(port))
        .replace("@CONTROLLER_PORT@", str(controller_port))
        .replace("@LOG_DIRS@", str(kdir / "log"))
    )
    classpath = f"{kafka_libs()}/*"
    log = data / "logs" / "kafka.log"
    if not (kdir / "log" / "meta.properties").exists():
        say("Kafka: formatting KRaft storage")
        fmt = subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
             "-t", str(uuid.uuid4().hex[:22]), "-c", str(props)],
            capture_output=True, text=True, check=False,
        )
        if fmt.returncode != 0:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(fmt.stdout + fmt.stderr)
            raise StackError(f"Kafka storage format failed: read {log}")
    heap = stack_settings.kafka_heap()
    proc = spawn([java, *heap, f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
                   "-cp", classpath, "kafka.Kafka", str(props)], log, outlive_caller=outlive_caller)
    bootstrap = f"127.0.0.1:{port}"
    say(f"Kafka: starting on {bootstrap} (log {log})")
    return bootstrap, proc, log


def start_registry(data: Path, port: int,
                   outlive_caller: bool = False) -> tuple[str, subprocess.Popen[bytes], Path]:
    java = _require("java", "install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    _check_port_free(port, "the schema registry", "SCHEMA_REGISTRY_PORT")
    jar = registry_dir() / f"apicurio-registry-app-{REGISTRY_VERSION}-runner.jar"
    log = data / "logs" / "registry.log"
    proc = spawn([java, "-Xmx384m", "-jar", str(jar)], log,
                  {"QUARKUS_HTTP_PORT": str(port), "QUARKUS_HTTP_HOST": "127.0.0.1"}, outlive_caller=outlive_caller)
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    say(f"Schema registry: starting on {url} (log {log})")
    return url, proc, log


def up(data: Path, kafka_port: int, controller_port: int, registry_port: int | None,
       outlive_caller: bool = False) -> Running:
    """Start the broker (and the registry when a port is given) side by side, then wait for both to answer.
    They die with the calling process unless `outlive_caller`; `down` stops them either way."""
    fetch(with_registry=registry_port is not None)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bootstrap, kafka, klog = start_kafka(data, kafka_port, controller_port, outlive_caller)
        procs.append(kafka)
        running = Running(bootstrap=bootstrap, kafka_pid=kafka.pid, kafka_log=str(klog))
        if registry_port is not None:
            url, reg, rlog = start_registry(data, registry_port, outlive_caller)
            procs.append(reg)
            running.registry_url, running.registry_pid, running.registry_log = url, reg.pid, str(rlog)
        _wait(_kafka_ready(bootstrap), kafka, "Kafka", klog, timeout=90)
        say("Kafka: ready")
        if registry_port is not None:
            _wait(_http_ready(f"{running.registry_url}/subjects"), procs[1], "the schema registry",
                  Path(str(running.registry_log)), timeout=120)
            say("Schema registry: ready")
    except BaseException:
        for proc in procs:
            stop_pid(proc.pid)
        raise
    (data / "stack.json").write_text(json.dumps(asdict(running)))
    return running


def stop_pid(pid: int | None, grace: float = 20.0) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
        os.waitpid(pid, os.WNOHANG)


def down(data: Path) -> None:
    state = data / "stack.json"
    if not state.exists():
        say("nothing to stop")
        return
    running = Running(**json.loads(state.read_text()))
    stop_pid(running.registry_pid)
    stop_pid(running.kafka_pid)
    state.unlink()
    say("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "up", "down"])
    settings = stack_settings.from_env()
    parser.add_argument("--data", type=Path, default=settings.data)
    parser.add_argument("--no-registry", action="store_true", help="start Kafka only")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch(with_registry=not args.no_registry)
        elif args.command == "up":
            running = up(args.data, settings.kafka_port, settings.controller_port,
                         None if args.no_registry else settings.registry_port, outlive_caller=True)
            print(json.dumps(asdict(running)))
        else:
            down(args.data)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
