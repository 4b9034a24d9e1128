"""Order-inventory's services as bundles (the contract's topology, B.6): ``edge``, ``orders``, ``inventory``,
``customers``; each stateful service keeps its consumer state and views in a store of its own."""

from __future__ import annotations

from typing import Any

from evento import Bundle
from evento.demo.order_inventory.edge import OrderInventoryInvoker, create_app
from evento.demo.order_inventory.inventory import (
    INVENTORY_TABLES,
    InventoryReadModel,
    ProductAggregate,
    ProductProjection,
    ProductProjector,
)
from evento.demo.order_inventory.orders import (
    ORDER_TABLES,
    OrderAggregate,
    OrderNotificationProjector,
    OrderProcessingSaga,
    OrderProjection,
    OrderProjector,
    OrdersReadModel,
)
from evento.demo.shared.customers import (
    CUSTOMER_TABLES,
    CustomerAggregate,
    CustomerProjection,
    CustomerProjector,
    CustomerReadModel,
)
from evento.demo.shared.system import ExampleConfig, ExampleSystem, ServiceFactory, service_bundle

__all__ = ["SERVICES", "OrderInventorySystem", "customers", "edge", "inventory", "orders"]


def edge(config: ExampleConfig, bundle_class: type[Bundle] = Bundle, **extra: Any) -> Bundle:
    """``edge``: the invoker behind the HTTP API; it holds no state."""
    return bundle_class("edge", components=[OrderInventoryInvoker], instance_id="edge-1", **extra)


def orders(config: ExampleConfig) -> Bundle:
    """``orders``: order lifecycle, the saga, order views and statistics."""
    components = [OrderAggregate, OrderProcessingSaga, OrderProjector, OrderProjection]
    return service_bundle(
        config, "orders", components, OrdersReadModel, ORDER_TABLES, contexts={OrderProjector: ["orders"]}
    )


def inventory(config: ExampleConfig) -> Bundle:
    """``inventory``: products, stock and reservations."""
    components = [ProductAggregate, ProductProjector, ProductProjection]
    contexts = {ProductProjector: ["inventory"]}
    return service_bundle(config, "inventory", components, InventoryReadModel, INVENTORY_TABLES, contexts=contexts)


def customers(config: ExampleConfig) -> Bundle:
    """``customers``: balances and notifications."""
    components = [CustomerAggregate, CustomerProjector, OrderNotificationProjector, CustomerProjection]
    contexts = {CustomerProjector: ["customers"], OrderNotificationProjector: ["orders"]}
    return service_bundle(config, "customers", components, CustomerReadModel, CUSTOMER_TABLES, contexts=contexts)


#: The stateful services in start order (the edge comes last, so its first request finds every owner).
SERVICES: dict[str, ServiceFactory] = {"inventory": inventory, "customers": customers, "orders": orders}


class OrderInventorySystem(ExampleSystem):
    """Every order-inventory service in one process (``evento demo order-inventory``)."""

    def __init__(self, config: ExampleConfig) -> None:
        self.config = config
        super().__init__([edge(config), *(factory(config) for factory in reversed(SERVICES.values()))], create_app)


#: What ``evento demo order-inventory`` runs in one process.
SYSTEM = OrderInventorySystem
