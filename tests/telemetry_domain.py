"""A small domain whose handlers cover every kind telemetry times: an aggregate, a service, a projector, a
projection, an observer that sends a service command, and an invoker that sends commands and a query."""

from __future__ import annotations

import threading

from evento import (
    AggregateState,
    CommandGateway,
    DomainCommand,
    DomainEvent,
    Invoker,
    Query,
    ServiceCommand,
    Single,
    View,
    aggregate,
    aggregate_command_handler,
    command_handler,
    event_handler,
    event_sourcing_handler,
    invocation_handler,
    invoker,
    observer,
    projection,
    projector,
    query_handler,
    service,
)


class OpenTally(DomainCommand):
    name: str

    @property
    def aggregate_id(self) -> str:
        return self.name


class Bump(DomainCommand):
    name: str

    @property
    def aggregate_id(self) -> str:
        return self.name


class TallyOpened(DomainEvent):
    name: str


class Bumped(DomainEvent):
    name: str
    value: int


class Announce(ServiceCommand):
    name: str


class TallyCount(View):
    name: str
    value: int


class GetTally(Query[Single[TallyCount]]):
    name: str


class TallyState(AggregateState):
    value: int = 0


@aggregate(snapshot_frequency=-1)
class Tally:
    """A named counter."""

    @aggregate_command_handler(init=True)
    def open(self, command: OpenTally) -> TallyOpened:
        return TallyOpened(name=command.name)

    @aggregate_command_handler
    def bump(self, command: Bump, state: TallyState) -> Bumped:
        return Bumped(name=command.name, value=state.value + 1)

    @event_sourcing_handler
    def opened(self, event: TallyOpened) -> TallyState:
        return TallyState()

    @event_sourcing_handler
    def bumped(self, event: Bumped, state: TallyState) -> TallyState:
        return TallyState(value=event.value)


class Board:
    """The read model the projector keeps and the projection reads (shared through the injector)."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.lock = threading.Lock()


@projector(version=1)
class TallyProjector:
    """Keeps each tally's value."""

    def __init__(self, board: Board) -> None:
        self.board = board

    @event_handler
    def on_opened(self, event: TallyOpened) -> None:
        with self.board.lock:
            self.board.values[event.name] = 0

    @event_handler
    def on_bumped(self, event: Bumped) -> None:
        with self.board.lock:
            self.board.values[event.name] = event.value


@projection()
class TallyProjection:
    """Answers a tally's value."""

    def __init__(self, board: Board) -> None:
        self.board = board

    @query_handler
    def get(self, query: GetTally) -> Single[TallyCount]:
        with self.board.lock:
            value = self.board.values.get(query.name)
        if value is None:
            raise LookupError(query.name)
        return Single(TallyCount(name=query.name, value=value))


@service()
class Announcer:
    """Announces a new tally (to nobody: it counts them)."""

    def __init__(self) -> None:
        self.announced = 0

    @command_handler
    def announce(self, command: Announce) -> None:
        self.announced += 1


@observer(version=1)
class TallyWatcher:
    """Asks for an announcement of every tally opened."""

    @event_handler
    async def on_opened(self, event: TallyOpened, commands: CommandGateway) -> None:
        await commands.send(Announce(name=event.name))


@invoker()
class Clerk(Invoker):
    """Where tests come in."""

    @invocation_handler
    async def open(self, name: str) -> None:
        await self.commands.send(OpenTally(name=name))

    @invocation_handler
    async def bump(self, name: str) -> None:
        await self.commands.send(Bump(name=name))

    @invocation_handler
    async def read(self, name: str) -> int:
        return (await self.queries.query(GetTally(name=name))).data.value
