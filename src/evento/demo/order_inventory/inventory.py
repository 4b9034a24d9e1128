"""The ``inventory`` service: products, their stock and the reservations orders hold on it.

The product aggregate is where stock can never be oversold: the server runs one command of a product at a time,
so each reservation sees the stock the previous one left. It remembers every order it reserved for or released,
so the order saga's resent commands change nothing (:class:`StepAlreadyTakenError`).
"""

from __future__ import annotations

from evento import (
    AggregateState,
    Single,
    aggregate,
    aggregate_command_handler,
    event_handler,
    event_sourcing_handler,
    projection,
    projector,
    query_handler,
)
from evento.demo.order_inventory.payloads import (
    CreateProductCommand,
    ProductCreatedEvent,
    ProductRestockedEvent,
    ProductView,
    ProductViewQuery,
    ReleaseStockCommand,
    ReserveStockCommand,
    RestockProductCommand,
    StockReleasedEvent,
    StockReservationRejectedEvent,
    StockReservedEvent,
)
from evento.demo.shared.errors import NotFoundError, StepAlreadyTakenError
from evento.demo.shared.read_model import ExampleReadModel

__all__ = ["INVENTORY_TABLES", "InventoryReadModel", "ProductAggregate", "ProductProjection", "ProductProjector"]


class ProductState(AggregateState):
    unit_price: int = 0
    #: Units available: on hand minus reserved or sold.
    stock: int = 0
    #: Units held for each order whose reservation stands (pending or confirmed).
    reserved: dict[str, int] = {}
    #: Orders refused or released: a reservation for them again is a resend.
    closed: set[str] = set()


@aggregate(snapshot_frequency=50)
class ProductAggregate:
    """A product's stock: all-or-nothing reservations, released at most once."""

    @aggregate_command_handler(init=True)
    def create(self, command: CreateProductCommand) -> ProductCreatedEvent:
        return ProductCreatedEvent(
            product_id=command.product_id, name=command.name, unit_price=command.unit_price, stock=command.stock
        )

    @event_sourcing_handler
    def on_created(self, event: ProductCreatedEvent) -> ProductState:
        return ProductState(unit_price=event.unit_price, stock=event.stock)

    @aggregate_command_handler
    def restock(self, command: RestockProductCommand, state: ProductState) -> ProductRestockedEvent:
        return ProductRestockedEvent(
            product_id=command.product_id, units=command.units, stock=state.stock + command.units
        )

    @event_sourcing_handler
    def on_restocked(self, event: ProductRestockedEvent, state: ProductState) -> None:
        state.stock = event.stock

    @aggregate_command_handler
    def reserve(
        self, command: ReserveStockCommand, state: ProductState
    ) -> StockReservedEvent | StockReservationRejectedEvent:
        if command.order_id in state.reserved or command.order_id in state.closed:
            raise StepAlreadyTakenError(f"order {command.order_id} was already processed by {command.product_id}")
        if state.stock < command.quantity:
            return StockReservationRejectedEvent(
                product_id=command.product_id, order_id=command.order_id, quantity=command.quantity
            )
        return StockReservedEvent(
            product_id=command.product_id,
            order_id=command.order_id,
            quantity=command.quantity,
            unit_price=state.unit_price,
            stock=state.stock - command.quantity,
        )

    @event_sourcing_handler
    def on_reserved(self, event: StockReservedEvent, state: ProductState) -> None:
        state.stock = event.stock
        state.reserved[event.order_id] = event.quantity

    @event_sourcing_handler
    def on_reservation_rejected(self, event: StockReservationRejectedEvent, state: ProductState) -> None:
        state.closed.add(event.order_id)

    @aggregate_command_handler
    def release(self, command: ReleaseStockCommand, state: ProductState) -> StockReleasedEvent:
        quantity = state.reserved.get(command.order_id)
        if quantity is None:
            raise StepAlreadyTakenError(f"order {command.order_id} holds no reservation on {command.product_id}")
        return StockReleasedEvent(
            product_id=command.product_id, order_id=command.order_id, quantity=quantity, stock=state.stock + quantity
        )

    @event_sourcing_handler
    def on_released(self, event: StockReleasedEvent, state: ProductState) -> None:
        state.stock = event.stock
        del state.reserved[event.order_id]
        state.closed.add(event.order_id)


INVENTORY_TABLES = [
    """CREATE TABLE IF NOT EXISTS oi_product (
        id VARCHAR(100) PRIMARY KEY, name TEXT NOT NULL, unit_price BIGINT NOT NULL, stock BIGINT NOT NULL
    )"""
]


class InventoryReadModel(ExampleReadModel):
    """The product view."""


@projector(version=1, exactly_once=True)
class ProductProjector:
    """Each product's available stock, as the aggregate's events state it."""

    def __init__(self, read_model: InventoryReadModel) -> None:
        self.read_model = read_model

    @event_handler
    def on_created(self, event: ProductCreatedEvent) -> None:
        self.read_model.write(
            lambda db: db.insert_new(
                "oi_product", id=event.product_id, name=event.name, unit_price=event.unit_price, stock=event.stock
            )
        )

    def _stock(self, product_id: str, stock: int) -> None:
        self.read_model.write(lambda db: db.execute("UPDATE oi_product SET stock = ? WHERE id = ?", stock, product_id))

    @event_handler
    def on_restocked(self, event: ProductRestockedEvent) -> None:
        self._stock(event.product_id, event.stock)

    @event_handler
    def on_reserved(self, event: StockReservedEvent) -> None:
        self._stock(event.product_id, event.stock)

    @event_handler
    def on_released(self, event: StockReleasedEvent) -> None:
        self._stock(event.product_id, event.stock)


@projection()
class ProductProjection:
    """Products with their available stock."""

    def __init__(self, read_model: InventoryReadModel) -> None:
        self.read_model = read_model

    @query_handler
    def product(self, query: ProductViewQuery) -> Single[ProductView]:
        row = self.read_model.read(
            lambda db: db.row("SELECT id, name, unit_price, stock FROM oi_product WHERE id = ?", query.product_id)
        )
        if row is None:
            raise NotFoundError(f"product {query.product_id} not found")
        return Single(ProductView(id=row[0], name=row[1], unit_price=int(row[2]), stock=int(row[3])))
