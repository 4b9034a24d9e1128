"""The server stores only events a bundle declared and that decode (issue 8, finding 3).

A bundle answering a command with an event that does not decode, or of a type it never declared, used to get it
stored while its caller was told it failed; every consumer then stopped at it. Here hostile bundles (real ones,
whose answers are forged on their way out) answer in process and over real TCP: the caller gets
:class:`InvalidEventError`, the store holds nothing of it, and consumers go on undisturbed. The schemas a bundle
registers are untrusted input too: a reference to a URL is never fetched and field names are never run as code.
"""

import asyncio
import contextlib
import datetime
import decimal
import enum
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from evento import (
    Bundle,
    CommandGateway,
    DomainCommand,
    DomainEvent,
    InvalidEventError,
    aggregate,
    aggregate_command_handler,
)
from evento.discovery import BundleRegistration
from evento.messages import (
    AggregateCommandResponse,
    BundleRequest,
    BundleResponse,
    EventMessage,
    ServiceCommandResponse,
)
from evento.server import EventoServer
from evento.transport.connector import TcpConnector
from tests.bank import (
    Account,
    BonusDesk,
    BonusService,
    Deposit,
    Ledger,
    LedgerProjector,
    OpenAccount,
    PayBonus,
)
from tests.helpers import ServerProcess, start_server_process, stop_server_process, wait_until

Forgery = Callable[[EventMessage], EventMessage]


def _payload(data: bytes) -> Forgery:
    return lambda event: msgspec.structs.replace(event, payload=data)


def _renamed(name: str) -> Forgery:
    return lambda event: msgspec.structs.replace(event, payload_name=name)


#: What a hostile (or broken) bundle answers instead of its real event, and what the refusal names.
FORGERIES: dict[str, tuple[Forgery, str]] = {
    "not JSON": (_payload(b'{"account": "A"'), "is not JSON"),
    "not an object": (_payload(b'["A"]'), "is not a JSON object"),
    "a field of the wrong type": (_payload(b'{"account": 5}'), "must be string"),
    "a required field missing": (_payload(b'{"context": "default"}'), "must contain ['account']"),
    "an undeclared type": (_renamed("Forged"), "'Forged', a type it does not declare"),
    "another bundle's type": (_renamed("BonusPaid"), "'BonusPaid', a type it does not declare"),
}


class Forger(Bundle):
    """A real bundle whose command answers are rewritten by ``forge`` on their way to the server."""

    forge: Forgery | None = None

    async def handle_request(self, message: BundleRequest) -> BundleResponse:
        response = await super().handle_request(message)
        forge = self.forge
        if forge is not None and isinstance(response, AggregateCommandResponse):
            return AggregateCommandResponse(forge(response.event), response.snapshot, response.deleted)
        if forge is not None and isinstance(response, ServiceCommandResponse) and response.event is not None:
            return ServiceCommandResponse(forge(response.event))
        return response


def _ledger(ledger: Ledger) -> Bundle:
    return Bundle("ledger", components=[LedgerProjector], injector={Ledger: ledger}.get)


async def _refuses_every_forgery(forger: Forger, commands: CommandGateway, stored: Callable[[], Any]) -> None:
    before = await stored()
    for n, (what, (forge, reason)) in enumerate(FORGERIES.items()):
        forger.forge = forge
        with pytest.raises(InvalidEventError, match=re.escape(reason)) as refused:
            await commands.send(OpenAccount(account=f"forged-{n}"))
        assert "nothing was stored" in str(refused.value), what
        assert await stored() == before, f"{what}: something was stored"
    forger.forge = None


async def test_an_aggregate_answering_an_event_that_does_not_decode_stores_nothing_in_process(
    server: EventoServer,
) -> None:
    """In process: every forged answer fails its command with InvalidEventError and stores nothing; the same
    bundle's genuine events are stored, and a projector sees exactly those, with nothing dead-lettered."""
    forger = Forger("accounts", components=[Account])
    ledger = Ledger()
    reader = _ledger(ledger)
    await forger.start(server)
    await reader.start(server)
    try:
        commands, _ = forger.gateways(None)
        await _refuses_every_forgery(forger, commands, server.store.count_events)
        await commands.send(OpenAccount(account="A"))
        await commands.send(Deposit(account="A", amount=5))
        assert await server.store.count_events() == 2
        await wait_until(lambda: len(ledger.seen) == 2, 10, what="the genuine events projected")
        assert ledger.seen == [(1, "AccountOpened", "default"), (2, "Deposited", "default")]
        (engine,) = reader.consumers.values()
        assert await engine.dead_events() == []
    finally:
        await reader.stop()
        await forger.stop()


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    running = await start_server_process(tmp_path / "server")
    yield running
    stop_server_process(running)


async def test_an_aggregate_answering_an_event_that_does_not_decode_stores_nothing_over_tcp(
    server_process: ServerProcess, tmp_path: Path
) -> None:
    """Over real TCP to an `evento server` process: the same refusals, read straight from its SQLite file, and a
    projector connected meanwhile projects the next genuine event with nothing dead-lettered."""
    events_db = tmp_path / "server" / "events.db"

    async def stored() -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(f"file:{events_db}?mode=ro", uri=True)) as conn:
            return conn.execute("SELECT sequence_number, event_name, payload FROM es_events").fetchall()

    forger = Forger("accounts", components=[Account])
    ledger = Ledger()
    reader = _ledger(ledger)
    await forger.start(TcpConnector(server_process.bus))
    await reader.start(TcpConnector(server_process.bus))
    try:
        commands, _ = forger.gateways(None)
        await _refuses_every_forgery(forger, commands, stored)
        assert await stored() == []
        await commands.send(OpenAccount(account="A"))
        await wait_until(lambda: len(ledger.seen) == 1, 10, what="the genuine event projected")
        assert ledger.seen == [(1, "AccountOpened", "default")]
        (engine,) = reader.consumers.values()
        assert await engine.dead_events() == []
    finally:
        await reader.stop()
        await forger.stop()


async def test_a_service_answering_an_event_that_does_not_decode_stores_nothing(server: EventoServer) -> None:
    """A service's event is checked the same way: a forged one fails the command and nothing is stored."""
    desk = BonusDesk()
    forger = Forger("bonus", components=[BonusService], injector={BonusDesk: desk}.get)
    await forger.start(server)
    try:
        commands, _ = forger.gateways(None)
        forger.forge = _payload(b'{"account": null}')
        with pytest.raises(InvalidEventError, match="BonusPaid from bundle bonus does not match its JSON Schema"):
            await commands.send(PayBonus(account="A", deposits=3))
        forger.forge = _renamed("AccountOpened")
        with pytest.raises(InvalidEventError, match="a type it does not declare"):
            await commands.send(PayBonus(account="B", deposits=3))
        assert desk.paid == ["A", "B"]  # the handler ran: it is its answer that was refused
        assert await server.store.count_events() == 0
        forger.forge = None
        paid = await commands.send(PayBonus(account="C", deposits=3))
        assert paid.account == "C"
        assert await server.store.count_events() == 1
    finally:
        await forger.stop()


# --- whatever msgspec types a genuine event uses, it is stored --------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct, array_like=True):
    x: int
    y: int


class Circle(msgspec.Struct, tag=True):
    radius: float


class Square(msgspec.Struct, tag=True):
    side: float


class Draw(DomainCommand):
    canvas: str
    variant: int = 0

    @property
    def aggregate_id(self) -> str:
        return self.canvas


class Drawn(DomainEvent):
    canvas: str
    pair: tuple[int, str]
    points: list[Point]
    shape: Circle | Square
    colour: Colour
    level: Literal[1, 2, 3]
    tags: set[str]
    counts: dict[int, str]
    price: decimal.Decimal
    at: Annotated[datetime.datetime, msgspec.Meta(tz=True)]
    even: Annotated[int, msgspec.Meta(ge=0, le=10, multiple_of=2)]
    code: Annotated[str, msgspec.Meta(pattern="^[A-Z]+$", min_length=1)]
    raw: bytes
    note: str | None = None


class Erased(DomainEvent):
    canvas: str


def _drawn(canvas: str) -> Drawn:
    return Drawn(
        canvas=canvas,
        pair=(1, "one"),
        points=[Point(0, 0), Point(1, 2)],
        shape=Square(side=2.5),
        colour=Colour.BLUE,
        level=2,
        tags={"a", "b"},
        counts={1: "x"},
        price=decimal.Decimal("9.99"),
        at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        even=4,
        code="ABC",
        raw=b"\x00\xff",
    )


@aggregate()
class Canvas:
    @aggregate_command_handler(init=True)
    def draw(self, command: Draw) -> Drawn | Erased:
        return Erased(canvas=command.canvas) if command.variant else _drawn(command.canvas)


class Sketch(DomainCommand):
    canvas: str

    @property
    def aggregate_id(self) -> str:
        return self.canvas


@aggregate()
class Sketcher:
    @aggregate_command_handler(init=True)
    def sketch(self, command: Sketch):  # no return annotation: it may return any domain event
        return Erased(canvas=command.canvas)


async def test_every_event_a_genuine_bundle_returns_is_stored_and_the_same_event_forged_is_not(
    server: EventoServer,
) -> None:
    """The check refuses nothing a genuine bundle returns: rich msgspec field types (tuples, array-like and tagged
    structs, enums, literals, sets, constrained numbers and strings, timestamps, bytes), every member of a union
    return annotation, and a handler without a return annotation. The same rich event with one field broken is
    refused."""
    forger = Forger("canvas", components=[Canvas, Sketcher])
    await forger.start(server)
    try:
        commands, _ = forger.gateways(None)
        assert (await commands.send(Draw(canvas="c1"))) == _drawn("c1")
        assert (await commands.send(Draw(canvas="c2", variant=1))) == Erased(canvas="c2")
        assert (await commands.send(Sketch(canvas="c3"))) == Erased(canvas="c3")
        assert await server.store.count_events() == 3
        broken = msgspec.json.decode(msgspec.json.encode(_drawn("c4")))
        broken["points"] = [[0, 0], [1, "two"]]
        forger.forge = _payload(msgspec.json.encode(broken))
        with pytest.raises(InvalidEventError, match=r"data\.points\[1\]\[1\] must be integer"):
            await commands.send(Draw(canvas="c4"))
        assert await server.store.count_events() == 3
    finally:
        await forger.stop()


# --- the schemas a bundle registers are untrusted input -----------------------------------------------------------


class Tagged(DomainEvent):
    account: str


class Tag(DomainCommand):
    account: str

    @property
    def aggregate_id(self) -> str:
        return self.account


@aggregate()
class Tagger:
    @aggregate_command_handler(init=True)
    def tag(self, command: Tag) -> Tagged:
        return Tagged(account=command.account)


class SchemaForger(Forger):
    """A bundle registering its own JSON Schema for ``Tagged``."""

    schema: dict[str, object] = {}

    def registration(self) -> BundleRegistration:
        genuine = super().registration()
        payloads = [
            msgspec.structs.replace(p, json_schema=self.schema) if p.name == "Tagged" else p for p in genuine.payloads
        ]
        return msgspec.structs.replace(genuine, payloads=payloads)


async def test_a_schema_referring_to_a_url_is_never_fetched_and_the_event_is_refused(server: EventoServer) -> None:
    """A registered schema may point its ``$ref`` anywhere; following it would make the server fetch URLs for a
    peer (or read its files). The server never connects, and an event it cannot check is not stored."""
    connections: list[str] = []

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("connected")
        writer.close()

    watcher = await asyncio.start_server(listener, "127.0.0.1", 0)
    port = watcher.sockets[0].getsockname()[1]
    forger = SchemaForger("tagger", components=[Tagger])
    forger.schema = {"$ref": f"http://127.0.0.1:{port}/schema.json"}
    try:
        await forger.start(server)
        commands, _ = forger.gateways(None)
        with pytest.raises(InvalidEventError, match="only references into the schema's own \\$defs"):
            await commands.send(Tag(account="A"))
        forger.schema = {"$ref": "file:///etc/passwd"}
        await forger.stop()
        await forger.start(server)  # registers again with the new schema
        with pytest.raises(InvalidEventError, match="unusable"):
            await commands.send(Tag(account="B"))
        assert connections == []
        assert await server.store.count_events() == 0
    finally:
        await forger.stop()
        watcher.close()


INJECTIONS = [
    '"]; import os; os._exit(3) #',
    "{__import__('os')._exit(3)}",
    "\\\"; __import__('os')._exit(3); \"",
    "a\nimport os\nos._exit(3)",
]


@pytest.mark.parametrize("key", INJECTIONS, ids=range(len(INJECTIONS)))
async def test_field_names_in_a_registered_schema_are_data_not_code(server: EventoServer, key: str) -> None:
    """The validator is generated code; a schema's field names and values from a peer must stay data in it. A
    field named like a Python statement is checked as a field (the process would be gone otherwise)."""
    forger = SchemaForger("tagger", components=[Tagger])
    forger.schema = {
        "type": "object",
        "properties": {key: {"type": "integer", "enum": [1, key]}, "account": {"type": "string"}},
        "required": ["account"],
    }
    await forger.start(server)
    try:
        commands, _ = forger.gateways(None)
        forger_event = msgspec.json.encode({"account": "A", key: "not an integer"})
        forger.forge = _payload(forger_event)
        with pytest.raises(InvalidEventError, match="must be integer"):
            await commands.send(Tag(account="A"))
        forger.forge = None
        assert (await commands.send(Tag(account="B"))) == Tagged(account="B")
        assert await server.store.count_events() == 1
    finally:
        await forger.stop()
