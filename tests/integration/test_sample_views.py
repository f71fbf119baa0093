"""The sample's rows in every `v_*` view equal a committed snapshot: a change that should not change behaviour (a
refactor) must leave every row of every view as it was. The snapshot was written by the code before the streams
layout split (issue 11); the sample is loaded as the dashboards' test loads it (tests/sample_load.py: the
services' own code over in-memory topics, deterministic clocks, so every column is compared).

To write a new snapshot after an intended change: `CALLPIPE_WRITE_SNAPSHOT=1 pytest tests/integration/
test_sample_views.py` (the run then fails, so that writing never passes), and commit the file with the change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from sinks.schema.migrate import migrate
from tests.sample_load import load_sample

pytestmark = pytest.mark.integration

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "sample_views.json"


def views_content(client: Client) -> dict[str, list[list[str]]]:
    views = [row[0] for row in client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, 'v_') "
        "ORDER BY name").result_rows]
    content: dict[str, list[list[str]]] = {}
    for view in views:
        columns = [row[0] for row in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {view:String} "
            "ORDER BY position", parameters={"view": view}).result_rows]
        cells = ", ".join(f"toString(`{column}`)" for column in columns)
        rows = client.query(f"SELECT {cells} FROM `{view}`").result_rows
        content[view] = sorted([list(row) for row in rows])
    return content


def test_every_view_holds_the_snapshot_rows_of_the_sample(clickhouse: Client) -> None:
    migrate(clickhouse)
    load_sample(clickhouse)
    content = views_content(clickhouse)
    if os.environ.get("CALLPIPE_WRITE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(content, indent=0, sort_keys=True) + "\n", encoding="utf-8")
        pytest.fail(f"snapshot written to {SNAPSHOT}: commit it; this run does not count")
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert sorted(content) == sorted(expected), "the set of views changed"
    for view in sorted(expected):
        assert content[view] == expected[view], f"{view}: rows differ from the snapshot"
    assert sum(map(len, content.values())) > 500, "the sample filled the views"
