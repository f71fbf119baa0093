"""Restart time of a streams worker against the state it holds (run by hand, alone on the machine).

    python -m bench.restart --copies 10 20 40

For each table store (`memory://`, `rocksdb://`) side by side in one run: one worker on a fresh app id, the sample
replayed under `copies` tenants straight into Kafka (`ingest.replay`), then the worker stopped cleanly and started
again; the restart time is from the start of the process to the end of its table recovery (the worker's
`callpipe_streams_rebalances_total` reaching 1). The in-memory store reads every changelog from its start on each
start; RocksDB keeps the tables in the worker's data directory and reads only the changelogs' tail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.host import machine
from bench.soak import scrape, table_entries
from deploy.local import stack
from deploy.local.services import Services, create_topics, service_env

SAMPLE = stack.ROOT / "deploy" / "sample" / "webhooks.jsonl"


def recovered_after(services: Services, name: str, port: int, data: Path, store: str, app_id: str) -> float:
    began = time.perf_counter()
    services.spawn(name, module="streams", STREAMS_STORE=store, STREAMS_APP_ID=app_id,
                   STREAMS_DATA_DIR=str(data / name), STREAMS_METRICS_PORT=str(port))
    while scrape(port).get("callpipe_streams_rebalances_total", 0) < 1:
        if time.perf_counter() - began > 900:
            raise stack.StackError(f"{name} did not recover within 900 s")
        time.sleep(0.1)
    return time.perf_counter() - began


def settle(port: int, quiet_s: float = 8) -> int:
    """Wait until the worker's state stops growing; its entries."""
    last, since = -1, time.perf_counter()
    while True:
        entries = sum(table_entries(scrape(port)).values())
        if entries != last:
            last, since = entries, time.perf_counter()
        elif time.perf_counter() - since > quiet_s:
            return entries
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args()
    data = Path("/tmp/callpipe-restart")
    stack.down(data)
    running = stack.up(data, stack.free_port(), stack.free_port(), stack.free_port())
    services = Services(data, service_env(data, running.bootstrap, running.registry_url, LOG_LEVEL="WARNING"))
    rows = []
    try:
        for store in ("memory://", "rocksdb://"):
            app_id = f"callpipe-restart-{store[:-3]}-{uuid.uuid4().hex[:6]}"
            create_topics(running.bootstrap, app_id)
            name, port, loaded = f"streams-{store[:-3]}", stack.free_port(), 0
            first = recovered_after(services, name, port, data, store, app_id)
            stack.say(f"{store}: first start recovered in {first:.1f}s")
            for copies in args.copies:
                for n in range(loaded, copies):
                    subprocess.run([sys.executable, "-m", "ingest.replay", "--tenant", f"r{n}", str(SAMPLE)],
                                   env=services.env, check=True, capture_output=True)
                loaded = copies
                entries = settle(port)
                stack.stop_pid(services.children.pop(name).pid, grace=60)
                seconds = recovered_after(services, name, port, data, store, app_id)
                rows.append({"store": store, "copies": copies, "state_entries": entries,
                             "restart_s": round(seconds, 2)})
                stack.say(f"{store}: {copies} copies, {entries} entries: restarted in {seconds:.1f}s")
            stack.stop_pid(services.children.pop(name).pid, grace=60)
        result = {"machine": machine(), "rows": rows}
        print(json.dumps(result, indent=1))
        (Path(__file__).resolve().parent / "restart.json").write_text(json.dumps(result, indent=1))
        return 0
    finally:
        services.stop()
        stack.down(data)


if __name__ == "__main__":
    raise SystemExit(main())
