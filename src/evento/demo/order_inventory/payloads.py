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
    """Base of the commands to one product: ``product_id`` names the product aggregate."""

    product_id: str

    @property
    def aggregate_id(self) -> str:
        return self.product_id


@domain("OrderInventory")
class CreateProductCommand(ProductCommand):
    """Add a product to the catalogue, at ``unit_price`` cents with ``stock`` units available."""

    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class RestockProductCommand(ProductCommand):
    """Add ``units`` to the product's available stock."""

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
    """A product was added, with its price and initial stock."""

    product_id: str
    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class ProductRestockedEvent(InventoryEvent):
    """``units`` were added to the stock; ``stock`` is the available stock after."""

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
    """The stock could not cover ``quantity`` units for the order: nothing was reserved."""

    product_id: str
    order_id: str
    quantity: int


@domain("OrderInventory")
class StockReleasedEvent(InventoryEvent):
    """The units reserved for the order went back into the stock (``stock`` is the stock after)."""

    product_id: str
    order_id: str
    quantity: int
    stock: int


# --- orders -------------------------------------------------------------------------------------------------------


class OrderCommand(DomainCommand):
    """Base of the commands to one order: ``order_id`` names the order aggregate."""

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
    """Confirm the pending order, the customer charged ``total``."""

    total: int


@domain("OrderInventory")
class RejectOrderCommand(OrderCommand):
    """Reject the pending order for ``reason`` (``OUT_OF_STOCK`` or ``INSUFFICIENT_FUNDS``)."""

    reason: str


@domain("OrderInventory")
class CancelOrderCommand(OrderCommand):
    """Cancel a confirmed order (T2): refund and restock follow, once."""


@domain("OrderInventory")
class OrderPlacedEvent(OrdersEvent):
    """An order was placed (PENDING)."""

    order_id: str
    customer_id: str
    product_id: str
    quantity: int


@domain("OrderInventory")
class OrderConfirmedEvent(OrdersEvent):
    """The order was confirmed: stock reserved and ``total`` charged."""

    order_id: str
    customer_id: str
    total: int


@domain("OrderInventory")
class OrderRejectedEvent(OrdersEvent):
    """The order was rejected for ``reason``."""

    order_id: str
    customer_id: str
    product_id: str
    reason: str


@domain("OrderInventory")
class OrderCancelledEvent(OrdersEvent):
    """A confirmed order was cancelled: the saga refunds ``total`` and puts ``quantity`` back in stock."""

    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    total: int


# --- views and queries -------------------------------------------------------------------------------------------


@domain("OrderInventory")
class ProductView(View, rename="camel"):
    """A product with its price and available stock."""

    id: str
    name: str
    unit_price: int
    stock: int


@domain("OrderInventory")
class OrderView(View, rename="camel", omit_defaults=True):
    """An order's status, and its rejection reason or charged total once decided."""

    order_id: str
    customer_id: str
    product_id: str
    quantity: int
    status: OrderStatus
    reason: str | None = None
    total: int | None = None


@domain("OrderInventory")
class OrderStatsView(View):
    """Orders confirmed, rejected and cancelled so far, and the revenue of the confirmed ones net of cancellations."""

    confirmed: int = 0
    rejected: int = 0
    revenue: int = 0
    cancelled: int = 0


@domain("OrderInventory")
class ProductViewQuery(Query[Single[ProductView]]):
    """The product ``product_id``."""

    product_id: str


@domain("OrderInventory")
class OrderViewQuery(Query[Single[OrderView]]):
    """The order ``order_id``."""

    order_id: str


@domain("OrderInventory")
class OrderStatsQuery(Query[Single[OrderStatsView]]):
    """The order statistics."""
