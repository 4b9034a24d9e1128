"""The ``evento`` command line: its parser, the process commands (``demo``, ``server``, ``bundle run``) and the one
line that ends a failure the operator can fix. Options also come from ``EVENTO_*`` environment variables."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from evento._version import __version__
from evento.cli import consumers, project, publish, users
from evento.cli.client import CommandError
from evento.errors import ConsumerStoreError, DataInUseError, EventoError, EventStoreError
from evento.startup import EXTRA_SCHEMES, StartupError, driver_error, missing_extra
from evento.storage.urls import without_passwords

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evento.server.api import ApiSettings
    from evento.server.telemetry import TelemetrySettings

log = logging.getLogger("evento.cli")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env(name: str, default: str) -> str:
    """The default of an option from ``EVENTO_<name>``. Typed options get it as a string, so argparse parses
    it like a command-line value: ``EVENTO_PORT=abc`` ends in its one-line usage error, not a traceback."""
    return os.environ.get(f"EVENTO_{name}", default)


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(_LOG_LEVELS)}")
    return level


def _port(value: str) -> int:
    port = int(value)  # argparse turns its ValueError into "invalid _port value"
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0 to 65535; 0: any free port)")
    return port


def _es_mode(value: str) -> str:
    if value not in ("cpes", "apes"):
        raise argparse.ArgumentTypeError(f"{value!r} is not cpes or apes")
    return value


def _rate(value: str) -> float:
    rate = float(value)  # argparse turns its ValueError into "invalid _rate value"
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share between 0 and 1")
    return rate


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def _api_options(parser: argparse.ArgumentParser) -> None:
    """The options of the server's REST API and telemetry, shared by ``evento server`` and ``evento demo``."""
    parser.add_argument(
        "--admin-password",
        default=_env("ADMIN_PASSWORD", ""),
        help="password of the API's admin user (default: EVENTO_ADMIN_PASSWORD; else one is generated at first"
        " start and printed once)",
    )
    parser.add_argument(
        "--advertised-url",
        default=_env("ADVERTISED_URL", "") or None,
        help="where the other servers of a cluster reach this server's API (default http://HOST:PORT)",
    )
    parser.add_argument(
        "--cluster-name", default=_env("CLUSTER_NAME", "evento"), help="the name the API's dashboard shows"
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        help="an origin (https://host:port) whose pages may call the API (repeatable; default EVENTO_CORS_ORIGINS,"
        " comma-separated; none: CORS off)",
    )
    parser.add_argument(
        "--metrics-public",
        action="store_true",
        default=_env("METRICS_PUBLIC", "").lower() in ("1", "true", "yes"),
        help="serve /metrics without credentials (for a Prometheus scraper)",
    )
    parser.add_argument(
        "--telemetry-rate",
        type=_rate,
        default=_env("TELEMETRY_RATE", "1.0"),
        help="share of handler invocations bundles time, 0 to 1 (default 1: every one)",
    )
    parser.add_argument(
        "--telemetry-ttl-days",
        type=_positive,
        default=_env("TELEMETRY_TTL_DAYS", "365"),
        help="days telemetry time buckets are kept",
    )


def _api_settings(args: argparse.Namespace) -> tuple[ApiSettings, TelemetrySettings]:
    """The API and telemetry settings of ``evento server`` or ``evento demo`` from their options."""
    from evento.server.api import ApiSettings
    from evento.server.telemetry import TelemetrySettings

    origins = args.cors_origin
    if origins is None:
        origins = [origin.strip() for origin in _env("CORS_ORIGINS", "").split(",") if origin.strip()]
    api = ApiSettings(
        admin_password=args.admin_password,
        advertised_url=args.advertised_url,
        cluster_name=args.cluster_name,
        cors_origins=tuple(origins),
        metrics_public=args.metrics_public,
    )
    return api, TelemetrySettings(capture_rate=args.telemetry_rate, ttl_days=args.telemetry_ttl_days)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evento", description="Evento for Python")
    parser.add_argument("--version", action="version", version=f"evento {__version__}")
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=_env("LOG_LEVEL", "INFO"),
        help="DEBUG also prints the traceback behind a one-line error",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the TodoList (or another example system) on the embedded default")
    demo.add_argument(
        "system",
        nargs="?",
        default="todolist",
        choices=["todolist", "order-inventory", "flight"],
        help="which system: the TodoList (default), or the order-inventory or flight example of the published contract",
    )
    demo.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", ".evento-demo")))
    demo.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    demo.add_argument("--port", type=_port, default=_env("PORT", "3000"), help="server HTTP port")
    demo.add_argument("--bus-port", type=_port, default=_env("BUS_PORT", "3030"), help="server bus port")
    demo.add_argument("--todo-port", type=_port, default=_env("TODO_PORT", "8080"), help="TodoList HTTP port")
    demo.add_argument(
        "--app-port", type=_port, default=_env("APP_PORT", "8080"), help="HTTP port of order-inventory and flight"
    )
    demo.add_argument(
        "--service-delay",
        type=float,
        default=_env("SERVICE_DELAY", "1.0"),
        help="simulated latency of the ERP and notification services, seconds",
    )
    demo.add_argument(
        "--distributed", action="store_true", help="run the server and every bundle as separate processes over TCP"
    )
    demo.add_argument(
        "--managed",
        action="store_true",
        help="with --distributed: the server starts the bundles through its deploy script and replaces any that dies",
    )
    demo.add_argument("--replicas", type=int, default=_env("REPLICAS", "1"), help="instances of each bundle")
    demo.add_argument(
        "--servers",
        type=int,
        default=_env("SERVER_COUNT", "1"),
        help="with --distributed: server processes sharing the --store (PostgreSQL), on consecutive ports",
    )
    demo.add_argument(
        "--bus-host",
        default=_env("BUS_HOST", "127.0.0.1"),
        help="where the bus listens (loopback unless given: --host opens only the HTTP APIs)",
    )
    demo.add_argument(
        "--auth-token", default=_env("AUTH_TOKEN", ""), help="the token bundle processes joining the bus must present"
    )
    _store_options(demo)
    _api_options(demo)
    demo.add_argument(
        "--consumer-store",
        default=_env("CONSUMER_STORE", "") or None,
        help="memory, sqlite path, postgresql://… or mysql://… (default: the --store database if PostgreSQL,"
        " else SQLite files in DATA_DIR); the TodoList read model lives there too",
    )
    server = commands.add_parser("server", help="run the Evento Server (bus over TCP, HTTP)")
    _store_options(server)
    _api_options(server)
    server.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR", ".evento-server")))
    server.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    server.add_argument("--port", type=_port, default=_env("PORT", "3000"), help="HTTP port")
    server.add_argument("--bus-port", type=_port, default=_env("BUS_PORT", "3030"), help="bus (TCP) port")
    server.add_argument(
        "--bus-host", default=_env("BUS_HOST", "") or None, help="where the bus listens (default --host)"
    )
    server.add_argument(
        "--auth-token", default=_env("AUTH_TOKEN", ""), help="shared secret: its holders may join as any bundle"
    )
    server.add_argument(
        "--bus-tokens",
        type=Path,
        default=_optional_path("BUS_TOKENS"),
        help="JSON file {token: [bundle ids]}: each token's holders may join only as those bundles",
    )
    server.add_argument(
        "--bus-max-unauthenticated",
        type=int,
        default=_env("BUS_MAX_UNAUTHENTICATED", "64"),
        help="bus connections allowed in their handshake at once; more are closed at once",
    )
    server.add_argument("--tls-cert", type=Path, default=_optional_path("TLS_CERT"))
    server.add_argument("--tls-key", type=Path, default=_optional_path("TLS_KEY"))
    server.add_argument("--server-id", default=_env("SERVER_ID", "") or None)
    server.add_argument(
        "--deploy-script",
        type=Path,
        default=_optional_path("DEPLOY_SCRIPT"),
        help="run as `PATH BUNDLE_JSON TOKEN` to start a bundle instance (default: a local process per instance)",
    )
    server.add_argument(
        "--scale-cooldown",
        type=_positive,
        default=_env("SCALE_COOLDOWN", "10"),
        help="seconds between two scaling decisions of a bundle (suffering or bored signals)",
    )
    server.add_argument(
        "--kill-grace",
        type=_positive,
        default=_env("KILL_GRACE", "10"),
        help="seconds an instance asked to leave has before its process is killed",
    )

    bundle = commands.add_parser("bundle", help="bundle processes").add_subparsers(dest="bundle_command", required=True)
    run = bundle.add_parser("run", help="run a bundle (MODULE:OBJECT, a Bundle or a factory) connected to servers")
    run.add_argument("target")
    run.add_argument(
        "--server",
        action="append",
        default=None,
        help="HOST:PORT of a server bus (repeatable; default from EVENTO_SERVERS, comma-separated, or 127.0.0.1:3030)",
    )
    run.add_argument("--auth-token", default=_env("AUTH_TOKEN", ""))
    run.add_argument(
        "--instance-id",
        default=_env("INSTANCE_ID", "") or None,
        help="join as this instance id (default: a new one); a server's deploy script names what it starts",
    )
    consumers.add_parser(commands)
    users.add_parser(commands)
    project.add_parser(commands)
    publish.add_parser(commands)
    return parser


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=_env("STORE", ""),
        help="event store: sqlite:///path, a file path or postgresql://user@host/db (default DATA_DIR/events.db)",
    )
    parser.add_argument(
        "--es-mode",
        type=_es_mode,
        default=_env("ES_MODE", "cpes"),
        help="PostgreSQL sequence mode: cpes (commit order, default) or apes (snowflake ids + fetch delay)",
    )
    parser.add_argument(
        "--fetch-delay-ms",
        type=float,
        default=_env("FETCH_DELAY_MS", "69"),
        help="APES: readers see events only once they are this old",
    )


def _optional_path(name: str) -> Path | None:
    value = _env(name, "")
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``evento`` command; what the operator must fix ends it with one line on stderr and status 1."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except Exception as exc:
        line = _one_line(exc, args)
        if line is None:  # a bug, not a setting: the traceback is what its reader needs
            raise
        log.debug("the traceback behind the error below", exc_info=exc)
        print(f"evento: {without_passwords(' '.join(line.split()))}", file=sys.stderr)  # one line, whatever exc said
        return 1


def _one_line(exc: Exception, args: argparse.Namespace) -> str | None:
    """The one line an operator acts on for ``exc``, or ``None`` when it is not a failure of theirs.

    This is the one place that decides it: the runners raise :class:`StartupError` (a port, naming its flag;
    a bad combination of options) and :class:`DataInUseError` (the data directory's holder); a store's
    driver extra that is not installed, or a database that does not answer, are recognised here, where the
    flags that named them are known.
    """
    if isinstance(exc, StartupError | DataInUseError | CommandError):
        return str(exc)
    extra = missing_extra(exc)
    if extra is not None:
        name, database = extra
        needs = f"{_flagged(args, name) or 'this'} needs"
        return f"{needs} the {database} driver: pip install 'evento-framework[{name}]'"
    if isinstance(exc, EventStoreError | ConsumerStoreError):
        flag, url = _stores(args)[0 if isinstance(exc, EventStoreError) else 1]
        return f"{flag} {url or 'default'}: {exc}"
    failed = driver_error(exc)
    if failed is not None:  # a database a read model or store reached through its driver, untranslated
        name, driver_exc = failed
        return f"{_flagged(args, name) or 'a database'}: {type(driver_exc).__name__}: {driver_exc}"
    if args.command == "bundle" and isinstance(exc, EventoError | OSError):
        return f"bundle run: {exc or type(exc).__name__}"  # refused (token, duplicate instance) or unreachable
    return None


def _flagged(args: argparse.Namespace, extra: str) -> str | None:
    """``--flag URL`` of the first store option whose URL needs ``extra``'s driver."""
    for flag, url in _stores(args):
        if url.lower().startswith(EXTRA_SCHEMES[extra]):
            return f"{flag} {url}"
    return None


def _stores(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The store options of the command and their values (empty when not given), event store first."""
    store = getattr(args, "store", "") or ""
    consumer = getattr(args, "consumer_store", None) or os.environ.get("EVENTO_CONSUMER_STORE", "")
    if args.command == "demo" and not consumer and store.lower().startswith(EXTRA_SCHEMES["postgres"]):
        consumer = store  # the demo keeps its consumer state in a PostgreSQL event store's database
    return [("--store", store), ("--consumer-store", consumer)]


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from evento.demo.runner import DemoOptions, run_demo

        api, telemetry = _api_settings(args)
        options = DemoOptions(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            bus_port=args.bus_port,
            todo_port=args.todo_port,
            app_port=args.app_port,
            system=args.system,
            service_delay=args.service_delay,
            store=args.store,
            es_mode=args.es_mode,
            fetch_delay=args.fetch_delay_ms / 1000,
            consumer_store=args.consumer_store,
            servers=args.servers,
            bus_host=args.bus_host,
            auth_token=args.auth_token,
            api=api,
            telemetry=telemetry,
            managed=args.managed,
        )
        if args.managed and not (args.distributed and args.system == "todolist"):
            _parser().error("--managed is for the distributed TodoList: add --distributed")
        if args.replicas != 1 and args.system != "todolist":
            _parser().error(f"{args.system} runs one process per service: --replicas is for the TodoList")
        if args.distributed:
            from evento.demo.distributed import run_distributed

            asyncio.run(run_distributed(options, args.replicas))
        elif args.servers != 1 or args.replicas != 1:
            _parser().error("--servers and --replicas run separate processes: add --distributed")
        else:
            asyncio.run(run_demo(options))
        return 0
    if args.command == "server":
        from evento.server.bus import BusSettings
        from evento.server.bus_credentials import load_bus_tokens
        from evento.server.deploy.supervisor import SupervisorSettings
        from evento.server.runner import ServerOptions, run_server

        try:
            bus_tokens = load_bus_tokens(args.bus_tokens) if args.bus_tokens is not None else {}
        except ValueError as exc:
            print(f"evento server: --bus-tokens: {exc}", file=sys.stderr)
            return 2
        api, telemetry = _api_settings(args)
        asyncio.run(
            run_server(
                ServerOptions(
                    store=args.store,
                    es_mode=args.es_mode,
                    fetch_delay=args.fetch_delay_ms / 1000,
                    data_dir=args.data_dir,
                    host=args.host,
                    port=args.port,
                    bus_port=args.bus_port,
                    auth_token=args.auth_token,
                    tls_cert=args.tls_cert,
                    tls_key=args.tls_key,
                    server_id=args.server_id,
                    bus_host=args.bus_host,
                    bus_tokens=bus_tokens,
                    bus_settings=BusSettings(max_unauthenticated=args.bus_max_unauthenticated),
                    api=api,
                    telemetry=telemetry,
                    deploy_script=args.deploy_script,
                    supervisor=SupervisorSettings(cooldown=args.scale_cooldown, grace=args.kill_grace),
                )
            )
        )
        return 0
    if args.command == "consumers":
        return consumers.run(args)
    if args.command == "users":
        return users.run(args)
    if args.command == "update-version":
        return project.run_update_version(args)
    if args.command == "publish":
        return publish.run_publish(args)
    if args.command == "bundle":
        from evento.bundle.runner import load_bundle, run_bundle

        servers = args.server or _env("SERVERS", "127.0.0.1:3030").split(",")
        bundle = load_bundle(args.target)
        if args.instance_id:
            bundle.use_instance_id(args.instance_id)
        asyncio.run(run_bundle(bundle, servers, args.auth_token))
        return 0
    return 2
