"""Server side of the ingest benchmark, one process per endpoint, both on the same stack (uvicorn, uvloop,
httptools, one worker): the real ingest app served as `python -m ingest` serves it (with the bounds of
ingest/server.py), or a bare Starlette app on uvicorn's own protocol that only answers 200 (the baseline that
shows what the HTTP stack alone costs).

    python -m bench.ingest_servers {ingest,baseline} --port P [--bootstrap B] [--profile FILE] [--linger-ms MS]
"""

from __future__ import annotations

import argparse
import cProfile
import signal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.app import create_app
from ingest.server import server_config
from ingest.settings import Settings
from runtime import env

TENANT = "bench"
SECRET = "bench-secret-not-for-production"


def baseline_app() -> Starlette:
    async def accept(request: Request) -> Response:
        return Response(b'{"status":"accepted"}', media_type="application/json")

    return Starlette(routes=[Route("/hooks/{tenant}/{kind}", accept, methods=["POST"])])


def ingest_config(bootstrap: str, linger_ms: float, port: int) -> uvicorn.Config:
    settings = Settings(host="127.0.0.1", port=port, kafka_bootstrap=bootstrap, schema_registry_url=None,
                        tenants={TENANT: SECRET}, max_body_bytes=256 * 1024, max_json_depth=16,
                        kafka_timeout_s=5.0, retry_after_s=5, kafka_linger_ms=linger_ms, log_level="WARNING")
    app = create_app(settings)
    return server_config(app, settings)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_servers")
    parser.add_argument("app", choices=["ingest", "baseline"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", default=env.DEFAULT_BOOTSTRAP)
    parser.add_argument("--profile", help="write cProfile statistics of the event-loop thread to this file")
    parser.add_argument("--linger-ms", type=float, default=2.0, help="the producer's linger.ms")
    args = parser.parse_args()
    if args.app == "ingest":
        config = ingest_config(args.bootstrap, args.linger_ms, args.port)
    else:
        config = uvicorn.Config(baseline_app(), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                                log_config=None, access_log=False)
    server = uvicorn.Server(config)
    if args.profile is None:
        server.run()
        return
    # uvicorn re-raises the signal that stopped it once it has shut down, under the handler found at start:
    # an ignoring handler lets the process live on to write the statistics.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    profiler = cProfile.Profile()
    profiler.runcall(server.run)
    profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
