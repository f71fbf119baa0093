"""deploy/compose and deploy/grafana agree with the code: settings, ports, topics, tables (no Docker engine needed)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ingest import settings as ingest_settings
from schemas import topics
from sinks import settings as sink_settings
from sinks.clickhouse import chdb_path
from sinks.schema.migrate import MIGRATIONS_DIR
from sinks.tools.query_server import DEFAULT_PORT as SINK_QUERY_PORT
from streams import settings as streams_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards"
# compose service -> the packages whose settings it reads; the shared packages are read by every service.
SERVICES = {"ingest": ("ingest",), "streams": ("streams",), "sink": ("sinks",)}
SHARED = ("schemas", "broker", "runtime")
SETTINGS: dict[str, Callable[[], Any]] = {
    "ingest": ingest_settings.from_env,
    "streams": streams_settings.from_env,
    "sink": sink_settings.from_env,
}
_ENV_READ = re.compile(r"\b(?:env\.)?(?:text|integer|number|optional)\(\s*\"([A-Z0-9_]+)\"")
_TOPIC_NAME = re.compile(r"\bcallpipe\.[a-z0-9.-]+\.v\d+\b")
_TABLE_REF = re.compile(r"\b(?:FROM|(?<!ARRAY )JOIN)\s+([A-Za-z_]\w*)", re.IGNORECASE)
_CREATED = re.compile(r"CREATE\s+(TABLE|VIEW)\s+IF\s+NOT\s+EXISTS\s+`?(\w+)`?", re.IGNORECASE)
# Base tables may be read instead of their v_* view only where versions do not matter and FINAL would only cost.
BASE_TABLE_PANELS = {"pipeline/Freshness per table (stand-in for consumer lag)"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found = compose["services"][name]
    assert isinstance(found, dict)
    return found


def environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = service(compose, name).get("environment", {})
    assert isinstance(env, dict), f"{name}: use the mapping form of environment"
    return {key: str(value) for key, value in env.items()}


def env_reads(packages: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            names |= set(_ENV_READ.findall(path.read_text(encoding="utf-8")))
    return names


def published(compose: dict[str, Any], name: str) -> dict[int, int]:
    """container port -> host port of the service's `ports`."""
    ports: dict[int, int] = {}
    for spec in service(compose, name).get("ports", []):
        host, _, container = str(spec).rpartition(":")  # [ip:]host:container
        ports[int(container)] = int(host.rpartition(":")[2] or container)
    return ports


def healthcheck(compose: dict[str, Any], name: str) -> str:
    test = service(compose, name)["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_every_service_exists_with_a_healthcheck(compose: dict[str, Any]) -> None:
    expected = {"kafka", "registry", "clickhouse", "grafana", "ingest", "streams", "sink"}
    assert expected <= set(compose["services"])
    for name in expected:
        assert "healthcheck" in service(compose, name), name


def test_the_three_services_share_one_image_built_from_the_root_dockerfile(compose: dict[str, Any]) -> None:
    for name, module in (("ingest", "ingest"), ("streams", "streams"), ("sink", "sinks")):
        spec = service(compose, name)
        context = (COMPOSE.parent / spec["build"]["context"]).resolve()
        assert context == ROOT and (context / spec["build"]["dockerfile"]) == ROOT / "Dockerfile"
        assert spec["image"] == "callpipe:local"
        assert spec["command"] == ["python", "-m", module]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile and "pip install ." in dockerfile


def test_dependencies_wait_for_health_or_completion(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for dependency, condition in spec.get("depends_on", {}).items():
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
            wanted = "service_completed_successfully" if dependency == "topics" else "service_healthy"
            assert condition == {"condition": wanted}, f"{name} -> {dependency}"
    assert set(service(compose, "sink")["depends_on"]) >= {"topics", "registry", "clickhouse"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_variable_a_service_reads_is_set(compose: dict[str, Any], name: str) -> None:
    reads = env_reads(SERVICES[name] + SHARED)
    assert reads, "the scan found no settings: did runtime/env.py change?"
    assert sorted(reads - environment(compose, name).keys()) == []


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_settings_code_accepts_the_compose_environment(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in env_reads(SERVICES[name] + SHARED):
        monkeypatch.delenv(variable, raising=False)
    for key, value in environment(compose, name).items():
        monkeypatch.setenv(key, value)
    SETTINGS[name]()  # raises SystemExit on a malformed value


def test_ingest_port_is_the_default_published_and_probed(compose: dict[str, Any]) -> None:
    env = environment(compose, "ingest")
    port = int(env["INGEST_PORT"])
    assert port == 8080  # README's default, which the replay and bench tools assume
    assert env["INGEST_HOST"] == "0.0.0.0"  # the 127.0.0.1 default is unreachable from outside the container
    assert published(compose, "ingest") == {port: port}
    assert f"127.0.0.1:{port}/readyz" in healthcheck(compose, "ingest")


def test_sink_query_port_is_the_default_and_probed(compose: dict[str, Any]) -> None:
    port = int(environment(compose, "sink")["SINK_QUERY_PORT"])
    assert port == SINK_QUERY_PORT
    assert f"127.0.0.1:{port}/health" in healthcheck(compose, "sink")


def test_kafka_bootstrap_is_the_advertised_listener(compose: dict[str, Any]) -> None:
    kafka = environment(compose, "kafka")
    advertised = dict(item.split("://", 1) for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    plaintext = advertised["PLAINTEXT"]
    host, port = plaintext.rsplit(":", 1)
    assert host == "kafka" and f"PLAINTEXT://:{port}" in kafka["KAFKA_LISTENERS"]
    for name, spec in compose["services"].items():
        bootstrap = spec.get("environment", {}).get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is not None:
            assert bootstrap == plaintext, name
    assert f"--bootstrap-server {plaintext}" in healthcheck(compose, "kafka")


def test_every_service_names_the_same_streams_app(compose: dict[str, Any]) -> None:
    app_ids = {spec["environment"]["STREAMS_APP_ID"] for spec in compose["services"].values()
               if "STREAMS_APP_ID" in spec.get("environment", {})}
    assert app_ids == {environment(compose, "streams")["STREAMS_APP_ID"]}


def test_schema_registry_url_is_the_registry_service(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        url = urlsplit(environment(compose, name)["SCHEMA_REGISTRY_URL"])
        assert (url.hostname, url.port, url.path) == ("registry", 8080, "/apis/ccompat/v7"), name
    assert 8080 in published(compose, "registry")


def test_clickhouse_url_is_the_server_over_http(compose: dict[str, Any]) -> None:
    url = environment(compose, "sink")["CLICKHOUSE_URL"]
    server = environment(compose, "clickhouse")
    parts = urlsplit(url)
    assert chdb_path(url) is None
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "clickhouse", 8123)
    assert (parts.username, parts.password) == (server["CLICKHOUSE_USER"], server["CLICKHOUSE_PASSWORD"])
    assert parts.path.strip("/") == server["CLICKHOUSE_DB"]


def test_topic_names_in_compose_exist() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert sorted(set(_TOPIC_NAME.findall(text)) - topics.BY_NAME.keys()) == []


def test_grafana_datasource_points_at_the_clickhouse_service(compose: dict[str, Any]) -> None:
    [source] = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))["datasources"]
    server = environment(compose, "clickhouse")
    data = source["jsonData"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert (data["host"], data["port"], data["protocol"]) == ("clickhouse", 8123, "http")
    assert "clickhouse" in compose["services"]
    assert (data["username"], data["defaultDatabase"]) == (server["CLICKHOUSE_USER"], server["CLICKHOUSE_DB"])
    assert source["secureJsonData"]["password"] == server["CLICKHOUSE_PASSWORD"]


def test_grafana_mounts_the_provisioning_and_installs_the_plugin(compose: dict[str, Any]) -> None:
    grafana = service(compose, "grafana")
    assert environment(compose, "grafana")["GF_INSTALL_PLUGINS"] == "grafana-clickhouse-datasource"
    mounts = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[(COMPOSE.parent / source).resolve()] = target
    assert mounts[GRAFANA / "provisioning"] == "/etc/grafana/provisioning"
    [provider_file] = DASHBOARD_PROVIDERS.glob("*.yaml")
    [provider] = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
    assert mounts[DASHBOARDS] == provider["options"]["path"]


def _created() -> dict[str, str]:
    """name -> TABLE or VIEW, over every migration."""
    created: dict[str, str] = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        for kind, name in _CREATED.findall(path.read_text(encoding="utf-8")):
            created[name] = kind.upper()
    return created


def _dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def test_there_are_dashboards() -> None:
    assert len(_dashboard_files()) >= 5


@pytest.mark.parametrize("path", _dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_is_valid_and_reads_only_migrated_tables(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    [source] = yaml.safe_load(DATASOURCE.read_text(encoding="utf-8"))["datasources"]
    created = _created()
    assert board["uid"] and board["title"] and board["panels"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        where = f"{path.stem}/{panel['title']}"
        assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], where
            sql = target["rawSql"]
            referenced = set(_TABLE_REF.findall(sql))
            assert referenced, where
            assert sorted(referenced - created.keys()) == [], where
            if where not in BASE_TABLE_PANELS:
                bypassed = {name for name in referenced if f"v_{name}" in created}
                assert sorted(bypassed) == [], f"{where}: read the v_* view (latest version only)"


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in _dashboard_files()]
    assert len(uids) == len(set(uids))
