"""The programming model: payload validation, registration checks (capability table), discovery, injection,
metadata propagation, interceptors and the startup gate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from evento import (
    Bundle,
    CapabilityError,
    CommandGateway,
    DomainCommand,
    DomainEvent,
    EventoServer,
    InvalidPayloadError,
    Invoker,
    MessageHandlerInterceptor,
    Metadata,
    Outbox,
    ProjectorStatus,
    QueryGateway,
    RegistrationError,
    SequenceNumber,
    ServiceCommand,
    Single,
    StoredEvent,
    TracingAgent,
    View,
    aggregate,
    aggregate_command_handler,
    command_handler,
    event_handler,
    invocation_handler,
    projection,
    projector,
    query_handler,
    service,
)
from evento.demo.todolist.observer import TodoListNotificationObserver
from evento.demo.todolist.saga import ErpTodoListActivityRegistrationSaga
from evento.messages import (
    CAUSATION_ID,
    CORRELATION_ID,
    CommandResult,
    SendCommand,
    ServerRequest,
    ServerResponse,
)
from evento.payloads import Query, decode_payload, encode_payload, payload_schema, query_response_type
from tests.bank import (
    Account,
    AccountOpened,
    Deposit,
    Deposited,
    InsufficientFunds,
    Ledger,
    LedgerProjector,
    OpenAccount,
    Withdraw,
)
from tests.helpers import wait_until

# --- payloads -----------------------------------------------------------------------------------------------------


def test_decoding_rejects_a_wrong_field_type_naming_the_field() -> None:
    with pytest.raises(InvalidPayloadError, match=r"Expected `int`, got `str` - at `\$.amount`"):
        decode_payload(b'{"account": "A", "amount": "ten"}', Deposit)


def test_decoding_ignores_fields_from_a_newer_peer() -> None:
    decoded = decode_payload(b'{"account": "A", "amount": 3, "currency": "EUR"}', Deposit)
    assert decoded == Deposit(account="A", amount=3)


def test_events_carry_a_context_defaulting_to_default() -> None:
    event = AccountOpened(account="A")
    assert event.context == "default"
    assert event.with_context("UK").context == "UK"
    with pytest.raises(ValueError, match="context cannot be empty"):
        event.with_context("")


def test_every_payload_has_a_json_schema() -> None:
    schema = payload_schema(Deposit)
    properties = schema["$defs"]["Deposit"]["properties"]
    assert properties["amount"] == {"type": "integer"}


def test_a_query_declares_its_response_type() -> None:
    class Found(View):
        name: str

    class Find(Query[Single[Found]]):
        key: str

    class Untyped(Query):  # type: ignore[type-arg]
        key: str

    assert query_response_type(Find) == Single[Found]
    with pytest.raises(TypeError, match="must declare its response type"):
        query_response_type(Untyped)


async def test_a_command_with_a_wrong_field_type_fails_at_the_caller_with_the_field_named(
    server: EventoServer,
) -> None:
    bundle = Bundle("accounts", components=[Account])
    await bundle.start(server)
    try:
        commands, _ = bundle.gateways(None)
        await commands.send(OpenAccount(account="A"))
        head = await server.store.head()
        with pytest.raises(InvalidPayloadError, match=r"\$.amount"):
            await commands.send(Deposit(account="A", amount="ten"))  # type: ignore[arg-type]
        assert await server.store.head() == head
    finally:
        await bundle.stop()


# --- registration checks ------------------------------------------------------------------------------------------


class Ping(DomainCommand):
    key: str

    @property
    def aggregate_id(self) -> str:
        return self.key


class Pinged(DomainEvent):
    key: str


class PingView(View):
    key: str


class FindPing(Query[Single[PingView]]):
    key: str


def test_a_projector_asking_for_a_command_gateway_is_refused_by_name() -> None:
    @projector()
    class Sneaky:
        @event_handler
        def on_pinged(self, event: Pinged, commands: CommandGateway) -> None: ...

    with pytest.raises(CapabilityError, match=r"Sneaky.on_pinged: a Projector may not send commands"):
        Bundle("b", components=[Sneaky])


def test_an_aggregate_asking_for_a_query_gateway_is_refused() -> None:
    @aggregate()
    class Curious:
        @aggregate_command_handler(init=True)
        def ping(self, command: Ping, queries: QueryGateway) -> Pinged:
            return Pinged(key=command.key)

    with pytest.raises(CapabilityError, match=r"Curious.ping: a Aggregate may not send queries"):
        Bundle("b", components=[Curious])


def test_a_projection_whose_body_sends_a_command_is_refused_with_the_line() -> None:
    @projection()
    class Meddling:
        @query_handler
        async def find(self, query: FindPing, queries: QueryGateway) -> Single[PingView]:
            gateway: Any = queries
            await gateway.send(Ping(key=query.key))  # smuggled through a variable: found by the AST scan
            return Single(PingView(key=query.key))

    with pytest.raises(CapabilityError, match=r"Meddling.find sends Ping \(line \d+\), but a Projection may not"):
        Bundle("b", components=[Meddling])


async def _smuggle(gateway: Any, key: str) -> None:
    await gateway.send(Ping(key=key))


@projection()
class MeddlingThroughHelpers:
    """Sends from helpers: a method of its own and a function of this module."""

    @query_handler
    async def find(self, query: FindPing, queries: QueryGateway) -> Single[PingView]:
        await self._forward(queries, query.key)
        return Single(PingView(key=query.key))

    async def _forward(self, gateway: Any, key: str) -> None:
        await _smuggle(gateway, key)


def test_a_send_inside_a_helper_the_handler_calls_is_found() -> None:
    with pytest.raises(CapabilityError, match=r"MeddlingThroughHelpers.find sends Ping \(line \d+\)"):
        Bundle("b", components=[MeddlingThroughHelpers])


class Ping2(ServiceCommand):
    key: str


def test_a_service_sending_a_query_is_refused() -> None:
    @service()
    class Nosy:
        @command_handler
        async def handle(self, command: Ping2, commands: CommandGateway) -> None:
            find = FindPing(key="x")
            await commands.query(find)  # type: ignore[attr-defined]

    with pytest.raises(CapabilityError, match="may not send queries"):
        Bundle("b", components=[Nosy])


def test_handlers_without_a_payload_or_with_two_for_one_payload_are_refused() -> None:
    @projector()
    class NoPayload:
        @event_handler
        def on_something(self, metadata: Metadata) -> None: ...

    @projector()
    class Twice:
        @event_handler
        def a(self, event: Pinged) -> None: ...

        @event_handler
        def b(self, event: Pinged) -> None: ...

    @projector()
    class Unannotated:
        @event_handler
        def a(self, event) -> None: ...

    with pytest.raises(RegistrationError, match=r"NoPayload.on_something: no parameter annotated with a Event"):
        Bundle("b", components=[NoPayload])
    with pytest.raises(RegistrationError, match="two EventHandler handlers for Pinged"):
        Bundle("b", components=[Twice])
    with pytest.raises(RegistrationError, match="'event' needs a type annotation"):
        Bundle("b", components=[Unannotated])


def test_a_missing_dependency_is_named_at_registration() -> None:
    with pytest.raises(RegistrationError, match="nothing to inject for Ledger"):
        Bundle("b", components=[LedgerProjector])


# --- discovery ----------------------------------------------------------------------------------------------------


def test_discovery_lists_what_each_handler_sends() -> None:
    bundle = Bundle("saga", components=[ErpTodoListActivityRegistrationSaga, TodoListNotificationObserver])
    handlers = {(h.component, h.payload): h for h in bundle.registration().handlers}
    checked = handlers[("ErpTodoListActivityRegistrationSaga", "TodoListTodoCheckedEvent")]
    assert set(checked.invoked_commands) == {"ErpUserActivityRegisterCommand"}
    assert checked.association_property == "identifier"
    observed = handlers[("TodoListNotificationObserver", "TodoListTodoCheckedEvent")]
    assert set(observed.invoked_commands) == {"NotificationSendCommand"}
    assert set(observed.invoked_queries) == {"TodoListViewFindByIdentifierQuery"}
    payloads = {p.name: p for p in bundle.registration().payloads}
    assert payloads["ErpUserActivityRegisterCommand"].domain == "TodoList"
    assert payloads["TodoListTodoCheckedEvent"].kind == "DomainEvent"
    assert "properties" in str(payloads["TodoListTodoCheckedEvent"].json_schema)


# --- injection, metadata, interceptors ----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []


@projector()
class Inspecting:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @event_handler
    async def on_opened(
        self,
        event: AccountOpened,
        metadata: Metadata,
        at: datetime,
        seq: SequenceNumber,
        status: ProjectorStatus,
        message: StoredEvent,
        queries: QueryGateway,
    ) -> None:
        self.recorder.calls.append(
            {
                "event": event,
                "metadata": dict(metadata),
                "at": at,
                "seq": seq,
                "head_reached": status.head_reached,
                "message": message,
                "queries": queries,
            }
        )


async def test_handlers_get_what_they_annotate_and_metadata_follows_the_causal_chain(server: EventoServer) -> None:
    recorder = Recorder()
    writer = Bundle("accounts", components=[Account])
    reader = Bundle("reader", components=[Inspecting], injector={Recorder: recorder}.get)
    await writer.start(server)
    await reader.start(server)
    try:
        commands, _ = writer.gateways(None)
        now = datetime.now(UTC)
        before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # timestamps are whole milliseconds
        await commands.send(OpenAccount(account="A"), metadata={"user": "alice", CORRELATION_ID: "corr-1"})
        await wait_until(lambda: len(recorder.calls) == 1)
        call = recorder.calls[0]
        assert call["event"] == AccountOpened(account="A")
        assert call["metadata"]["user"] == "alice"  # copied from the command to its event
        assert call["metadata"][CORRELATION_ID] == "corr-1"
        assert call["metadata"][CAUSATION_ID]  # the command's message id
        assert call["message"].metadata[CAUSATION_ID] != call["message"].message_id
        assert before <= call["at"] <= datetime.now(UTC)
        assert call["seq"] == call["message"].sequence_number == 1
        assert isinstance(call["queries"], QueryGateway)
    finally:
        await reader.stop()
        await writer.stop()


class Audit(MessageHandlerInterceptor):
    def __init__(self) -> None:
        self.log: list[str] = []

    def before(self, kind: str, component: str, payload: Any, metadata: dict[str, str]) -> None:
        self.log.append(f"before {component}")
        if getattr(payload, "amount", 0) == 666:
            raise PermissionError("amount refused by policy")

    def after(self, kind: str, component: str, payload: Any, result: Any) -> Any:
        self.log.append(f"after {component}")
        if isinstance(result, Deposited) and result.amount == 7:
            return Deposited(account=result.account, amount=7, balance=result.balance, seen_version=-1)
        return result

    def on_exception(self, kind: str, component: str, payload: Any, error: BaseException) -> BaseException:
        self.log.append(f"error {component}")
        return error


async def test_interceptors_wrap_handlers_may_replace_results_and_abort(server: EventoServer) -> None:
    audit = Audit()
    bundle = Bundle("accounts", components=[Account], interceptors=[audit])
    await bundle.start(server)
    try:
        commands, _ = bundle.gateways(None)
        await commands.send(OpenAccount(account="A"))
        assert (await commands.send(Deposit(account="A", amount=7))).seen_version == -1
        head = await server.store.head()
        audit.log.clear()
        with pytest.raises(PermissionError, match="refused by policy"):
            await commands.send(Deposit(account="A", amount=666))
        assert await server.store.head() == head
        assert audit.log == ["before Account"]  # a refusing 'before' aborts: no handler, no 'after'
        audit.log.clear()
        with pytest.raises(InsufficientFunds):
            await commands.send(Withdraw(account="A", amount=1000))
        assert audit.log == ["before Account", "error Account"]
    finally:
        await bundle.stop()


class TenantAgent(TracingAgent):
    def correlate(self, metadata: Metadata | None, handled: Any) -> dict[str, str]:
        result = super().correlate(metadata, handled)
        result["tenant"] = "acme"
        return result


async def test_a_tracing_agent_decides_outgoing_metadata(server: EventoServer) -> None:
    recorder = Recorder()
    writer = Bundle("accounts", components=[Account], tracing_agent=TenantAgent())
    reader = Bundle("reader", components=[Inspecting], injector={Recorder: recorder}.get)
    await writer.start(server)
    await reader.start(server)
    try:
        commands, _ = writer.gateways(None)
        await commands.send(OpenAccount(account="T"))
        await wait_until(lambda: len(recorder.calls) == 1)
        assert recorder.calls[0]["metadata"]["tenant"] == "acme"
    finally:
        await reader.stop()
        await writer.stop()


class Bank(Invoker):
    @invocation_handler
    async def open(self, account: str) -> AccountOpened:
        opened: AccountOpened = await self.commands.send(OpenAccount(account=account))
        return opened

    @invocation_handler
    def open_blocking(self, account: str) -> AccountOpened:
        opened: AccountOpened = self.commands.send_sync(OpenAccount(account=account))
        return opened


class _Handled:
    """A message being handled, as a user's own fixture may make one."""

    message_id = "handled-1"
    metadata = {CORRELATION_ID: "flow-1", "tenant": "t1"}


class _RecordingOutbox:
    """A user's own stand-in for a bundle and its server: it records what is sent and answers "done"."""

    owner = "my-fixture"

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.sent: list[ServerRequest] = []

    async def request(self, message: ServerRequest, timeout: float) -> ServerResponse:
        self.sent.append(message)
        return CommandResult(None)

    def correlate(self, metadata: Metadata | None, handled: Any) -> dict[str, str]:
        return TracingAgent().correlate(metadata, handled)


async def test_a_gateway_sends_through_any_outbox_a_user_writes() -> None:
    """``evento.Outbox`` is all a gateway needs of a bundle: a fixture of the user's own receives the command,
    correlated with the message being handled, and the gateway returns what it answers."""
    recorder = _RecordingOutbox()
    outbox: Outbox = recorder  # the contract, checked by mypy
    commands = CommandGateway(outbox, _Handled())
    assert await commands.send(Deposit(account="a1", amount=5), {"channel": "test"}) is None
    (sent,) = recorder.sent
    assert isinstance(sent, SendCommand)
    assert sent.command.payload_name == "Deposit"
    assert sent.command.metadata[CORRELATION_ID] == "flow-1"
    assert sent.command.metadata[CAUSATION_ID] == "handled-1"
    assert sent.command.metadata["tenant"] == "t1"
    assert sent.command.metadata["channel"] == "test"


async def test_invoker_gateways_exist_only_inside_invocation_handlers(server: EventoServer) -> None:
    bundle = Bundle("accounts", components=[Account])
    await bundle.start(server)
    try:
        bank = bundle.invoker(Bank)
        assert await bank.open("I1") == AccountOpened(account="I1")
        assert await asyncio.to_thread(bank.open_blocking, "I2") == AccountOpened(account="I2")
        with pytest.raises(RuntimeError, match="only available inside an @invocation_handler"):
            _ = bank.commands
    finally:
        await bundle.stop()


@projector(wait_for_head_reached=True)
class SlowStarter:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @event_handler
    async def on_deposited(self, event: Deposited) -> None:
        await asyncio.sleep(0.01)
        self.ledger.record(0, "Deposited", event.context)


async def test_a_bundle_is_routable_only_after_its_waiting_projectors_reached_the_head(server: EventoServer) -> None:
    writer = Bundle("accounts", components=[Account])
    await writer.start(server)
    commands, _ = writer.gateways(None)
    await commands.send(OpenAccount(account="W"))
    for n in range(20):
        await commands.send(Deposit(account="W", amount=n))
    ledger = Ledger()
    gated = Bundle("gated", components=[SlowStarter], injector=provide_ledger(ledger))
    start = asyncio.create_task(gated.start(server))
    await wait_until(lambda: any(n.info.bundle_id == "gated" for n in server.registry.nodes))
    node = next(n for n in server.registry.nodes if n.info.bundle_id == "gated")
    assert not node.enabled
    assert len(ledger.seen) < 20
    await start
    try:
        assert node.enabled
        assert len(ledger.seen) == 20
    finally:
        await gated.stop()
        await writer.stop()


def provide_ledger(ledger: Ledger) -> Any:
    return {Ledger: ledger}.get


def test_encode_round_trip_of_views() -> None:
    view = PingView(key="k")
    assert decode_payload(encode_payload(Single(view)), Single[PingView]).data == view
