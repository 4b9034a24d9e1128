"""Order-inventory payloads (domain "OrderInventory"): products, orders, their views and queries.

Money is in cents; every event that changes a number carries the number after the change, so views copy it and a
redelivered event changes nothing.
"""

from __future__ import annotations

from typing import Literal

from evento import DomainCommand, DomainEvent, Query, Single, View, domain

OrderStatus = Literal["PENDING", "CONFIRMED", "REJECTED", "CANCELLED"]
OUT_OF_STOCK = "OUT_OF_STOCK"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"


class InventoryEvent(DomainEvent, kw_only=True):
    """Base of the product events, in context ``inventory``: the product view's projector reads only these."""

    context: str = "inventory"


class OrdersEvent(DomainEvent, kw_only=True):
    """Base of the order events, in context ``orders`` (the order view and the notifications read only these; the
    saga reads every context)."""

    context: str = "orders"


# --- products (inventory) --------------------------------------------------------------------------------------


class ProductCommand(DomainCommand):
    product_id: str

    @property
    def aggregate_id(self) -> str:
        return self.product_id


@domain("OrderInventory")
class CreateProductCommand(ProductCommand):
    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class RestockProductCommand(ProductCommand):
    units: int


@domain("OrderInventory")
class ReserveStockCommand(ProductCommand):
    """Take ``quantity`` units out of the available stock for ``order_id``, all or nothing."""

    order_id: str
    quantity: int


@domain("OrderInventory")
class ReleaseStockCommand(ProductCommand):
    """Put back the units reserved for ``order_id`` (its charge failed, or it was cancelled)."""

    order_id: str


@domain("OrderInventory")
class ProductCreatedEvent(InventoryEvent):
    product_id: str
    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class ProductRestockedEvent(InventoryEvent):
    product_id: str
    units: int
    stock: int


@domain("OrderInventory")
class StockReservedEvent(InventoryEvent):
    """``unit_price`` is the price when the order was processed: the saga charges quantity × unit_price."""

    product_id: str
    order_id: str
    quantity: int
    unit_price: int
    stock: int


@domain("OrderInventory")
class StockReservationRejectedEvent(InventoryEvent):
    product_id: str
    order_id: str
    quantity: int


@domain("OrderInventory")
class StockReleasedEvent(InventoryEvent):
    product_id: str
    order_id: str
    quantity: int
    stock: int


# --- orders -------------------------------------------------------------------------------------------------------


class OrderCommand(DomainCommand):
    order_id: str

    @property
    def aggregate_id(self) -> str:
        return self.order_id


@domain("OrderInventory")
class PlaceOrderCommand(OrderCommand):
    """Record an order (PENDING); the client's ``order_id`` is the aggregate id, so a replay finds it."""

    customer_id: str
    product_id: str
    quantity: int


@domain("OrderInventory")
class ConfirmOrderCommand(OrderCommand):
    total: int


@domain("OrderInventory")
class RejectOrderCommand(OrderCommand):
    reason: str


@domain("OrderInventory")
class CancelOrderCommand(OrderCommand):
    """Cancel a confirmed order (T2): refund and restock follow, once."""


@domain("OrderInventory")
class OrderPlacedEvent(OrdersEvent):
    order_id: str
    customer_id: str
    product_id: str
    quantity: int


@domain("OrderInventory")
class OrderConfirmedEvent(OrdersEvent):
    order_id: str
    customer_id: str
    total: int


@domain("OrderInventory")
class OrderRejectedEvent(OrdersEvent):
    order_id: str
    customer_id: str
    product_id: str
    reason: str


@domain("OrderInventory")
class OrderCancelledEvent(OrdersEvent):
    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    total: int


# --- views and queries -------------------------------------------------------------------------------------------


@domain("OrderInventory")
class ProductView(View, rename="camel"):
    id: str
    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class OrderView(View, rename="camel", omit_defaults=True):
    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    status: OrderStatus
    reason: str | None = None
    total: int | None = None


@domain("OrderInventory")
class OrderStatsView(View):
    confirmed: int = 0
    rejected: int = 0
    revenue: int = 0
    cancelled: int = 0


@domain("OrderInventory")
class ProductViewQuery(Query[Single[ProductView]]):
    product_id: str


@domain("OrderInventory")
class OrderViewQuery(Query[Single[OrderView]]):
    order_id: str


@domain("OrderInventory")
class OrderStatsQuery(Query[Single[OrderStatsView]]):
    pass
