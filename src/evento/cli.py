"""The ``evento`` command line. Options also come from ``EVENTO_*`` environment variables."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"EVENTO_{name}", default)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evento", description="Evento for Python")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the TodoList system on the embedded default (SQLite)")
    demo.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", ".evento-demo")))
    demo.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    demo.add_argument("--port", type=int, default=int(_env("PORT", "3000")), help="server HTTP port")
    demo.add_argument("--bus-port", type=int, default=int(_env("BUS_PORT", "3030")), help="server bus port")
    demo.add_argument("--todo-port", type=int, default=int(_env("TODO_PORT", "8080")), help="TodoList HTTP port")
    demo.add_argument(
        "--service-delay",
        type=float,
        default=float(_env("SERVICE_DELAY", "1.0")),
        help="simulated latency of the ERP and notification services, seconds",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        from evento.demo.runner import DemoOptions, run_demo

        options = DemoOptions(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            bus_port=args.bus_port,
            todo_port=args.todo_port,
            service_delay=args.service_delay,
        )
        asyncio.run(run_demo(options))
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
