"""Every panel query of every Grafana dashboard runs on the bundled sample and returns rows.

The sample is loaded once into a fresh database of the per-process chdb directory that the sink tests use
(one process can hold one chdb directory at a time). Grafana macros are expanded the way the ClickHouse data
source plugin does it (grafana/clickhouse-datasource ``pkg/macros/macros.go``, v4), over the sample's day.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from broker.lag import LagMonitor
from schemas import topics
from sinks.clickhouse import connect
from sinks.schema.migrate import migrate
from sinks.schema.tables import DEAD_LETTERS, catalog
from sinks.write import lag
from tests.conftest import CHDB_URL
from tests.sample_load import load_sample

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
FROM = datetime(2026, 11, 20, tzinfo=UTC)
TO = datetime(2026, 11, 21, tzinfo=UTC)
INTERVALS = {"1m": 60, "1h": 3600}
# The plugin finds a macro with `\$__name(?:\((.*?)\))?`: arguments end at the first ")" and are split on ",".
_MACRO = re.compile(r"\$__(\w+)(?:\((.*?)\))?")
_VARIABLE = re.compile(r"\$\{?\w+")


class MacroError(ValueError):
    pass


def expand(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """The plugin's expansion of the macros the dashboards use; anything else is an error, so that a panel
    cannot depend on a macro or template variable this test does not know how to expand."""
    frm, to = f"toDateTime({int(start.timestamp())})", f"toDateTime({int(end.timestamp())})"
    interval = max(interval_s, 1)

    def one_column(name: str, args: list[str]) -> str:
        if len(args) != 1 or not re.fullmatch(r"[A-Za-z_][\w.]*", args[0]):
            raise MacroError(f"$__{name} takes one plain column (the plugin cuts arguments at ')'): {args}")
        return args[0]

    macros: dict[str, Callable[[list[str]], str]] = {
        "fromTime": lambda args: frm,
        "toTime": lambda args: to,
        "interval_s": lambda args: str(interval),
        "timeFilter": lambda args: f"{(c := one_column('timeFilter', args))} >= {frm} AND {c} <= {to}",
        "timeInterval": lambda args: (
            f"toStartOfInterval(toDateTime({one_column('timeInterval', args)}), INTERVAL {interval} second)"
        ),
    }

    def replace(match: re.Match[str]) -> str:
        name, raw_args = match.group(1), match.group(2)
        if name not in macros:
            raise MacroError(f"unsupported macro $__{name}")
        args = [] if raw_args is None else [a.strip() for a in raw_args.split(",")]
        return macros[name](args)

    expanded = _MACRO.sub(replace, sql)
    leftover = _VARIABLE.search(expanded)
    if leftover:
        raise MacroError(f"unexpanded template variable {leftover.group(0)}")
    return expanded


def panels() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield path.stem, panel["title"], target


PANELS = [
    pytest.param(f"{board}/{title}", target["rawSql"], id=f"{board}/{title}/{target['refId']}")
    for board, title, target in panels()
]


@pytest.fixture(scope="module")
def sample_db(kafka: str) -> Iterator[Client]:
    client = connect(CHDB_URL)
    database = f"dash_{uuid.uuid4().hex}"
    client.command(f"CREATE DATABASE {database}")
    client.database = database
    try:
        migrate(client)
        load_sample(client)
        # Consumer lag is measured, not loaded: one real measurement against the test broker.
        groups: dict[str, Sequence[str]] = {topics.SINK_GROUP_ID: [t.name for t in topics.ALL_TOPICS]}
        client.insert(lag.TABLE, lag.rows(LagMonitor(kafka, groups, 1.0, lambda lags: None).measure()),
                      column_names=list(lag.COLUMNS))
        yield client
    finally:
        client.command(f"DROP DATABASE {database}")
        client.close()


def test_the_sample_lands_in_every_topic_table(sample_db: Client) -> None:
    fed = [spec.name for spec in catalog().tables if spec.name != DEAD_LETTERS]
    empty = [name for name in fed if sample_db.query(f"SELECT count() FROM {name}").result_rows == [(0,)]]
    assert empty == []
    # The sample normalizes completely and every record fits its table: no dead letter at any stage.
    assert sample_db.query(f"SELECT count() FROM {DEAD_LETTERS}").result_rows == [(0,)]


def test_every_dashboard_has_panels() -> None:
    boards = sorted(p.stem for p in DASHBOARDS.glob("*.json"))
    assert boards == ["billing", "calls", "live", "pipeline", "sms"]
    assert all(any(b == board for b, _, _ in panels()) for board in boards)


@pytest.mark.parametrize("interval", INTERVALS.values(), ids=INTERVALS.keys())
@pytest.mark.parametrize(("panel", "sql"), PANELS)
def test_panel_query_returns_rows_on_the_sample(sample_db: Client, panel: str, sql: str, interval: int) -> None:
    result = sample_db.query(expand(sql, FROM, TO, interval))
    assert result.result_rows, "the panel shows nothing on the sample"
    values = [i for i, name in enumerate(result.column_names) if name != "time"]
    has_values = any(row[i] is not None for row in result.result_rows for i in values)
    assert has_values, "every value of the panel is null on the sample"


def test_macro_expansion_matches_the_plugin() -> None:
    sql = "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND y < $__toTime LIMIT $__interval_s"
    assert expand(sql, FROM, TO, 60) == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 60 second) AS time FROM x"
        " WHERE t >= toDateTime(1795132800) AND t <= toDateTime(1795219200) AND y < toDateTime(1795219200)"
        " LIMIT 60"
    )
    for bad in ("$__timeFilter(ifNull(a, b))", "$__timeFilter_ms(t)", "tenant = '$tenant'"):
        with pytest.raises(MacroError):
            expand(bad, FROM, TO, 60)
