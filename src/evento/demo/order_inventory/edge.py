"""The ``edge`` service: the invoker and the public HTTP API of order-inventory (contract part B.2).

Writes return once their event is stored (so a restock sent right after a 201 finds its product); an order is
only recorded here, the saga decides it. Creates answer once the new entity is also in its view (or after
:data:`VIEW_WAIT` seconds), so a client reading right after a 201 usually finds it.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from evento import AggregateInitializedError, Bundle, invocation_handler, invoker
from evento.demo.order_inventory.payloads import (
    CancelOrderCommand,
    CreateProductCommand,
    OrderStatsQuery,
    OrderStatsView,
    OrderView,
    OrderViewQuery,
    PlaceOrderCommand,
    ProductView,
    ProductViewQuery,
    RestockProductCommand,
)
from evento.demo.shared.edge import CustomerInvoker, Id, Name, Positive, add_customer_routes, until_found
from evento.demo.shared.errors import StepAlreadyTakenError
from evento.demo.shared.http import json_response, new_id, read_body, require_uuid, with_error_handlers

__all__ = ["OrderInventoryInvoker", "create_app"]

Units = Annotated[int, msgspec.Meta(ge=0, le=10**12)]


class ProductBody(msgspec.Struct, rename="camel"):
    name: Name
    unit_price: Annotated[int, msgspec.Meta(ge=1, le=10**9)]
    stock: Units


class RestockBody(msgspec.Struct):
    units: Positive


class OrderBody(msgspec.Struct, rename="camel"):
    order_id: Id
    customer_id: Id
    product_id: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10**6)]


@invoker()
class OrderInventoryInvoker(CustomerInvoker):
    """What the HTTP API offers, as commands and queries."""

    reference_key = "orderId"

    @invocation_handler
    async def create_product(self, name: str, unit_price: int, stock: int) -> ProductView:
        product_id = new_id()
        await self.commands.send(
            CreateProductCommand(product_id=product_id, name=name, unit_price=unit_price, stock=stock),
            timeout=self.timeout,
        )
        created = ProductView(id=product_id, name=name, unit_price=unit_price, stock=stock)
        await until_found(lambda: self.product(product_id))
        return created

    @invocation_handler
    async def restock(self, product_id: str, units: int) -> None:
        await self.commands.send(RestockProductCommand(product_id=product_id, units=units), timeout=self.timeout)

    @invocation_handler
    async def product(self, product_id: str) -> ProductView:
        return (await self.queries.query(ProductViewQuery(product_id=product_id), timeout=self.timeout)).data

    @invocation_handler
    async def place_order(self, body: OrderBody) -> tuple[OrderView, bool]:
        """The order as known, and whether this call created it (False: a replay of a known order id)."""
        command = PlaceOrderCommand(
            order_id=body.order_id, customer_id=body.customer_id, product_id=body.product_id, quantity=body.quantity
        )
        placed = OrderView(
            order_id=body.order_id,
            customer_id=body.customer_id,
            product_id=body.product_id,
            quantity=body.quantity,
            status="PENDING",
        )
        try:
            await self.commands.send(command, timeout=self.timeout)
        except AggregateInitializedError:  # the order aggregate exists: this id was placed before
            known = await until_found(lambda: self.order(body.order_id))
            return known or placed, False
        return placed, True

    @invocation_handler
    async def order(self, order_id: str) -> OrderView:
        return (await self.queries.query(OrderViewQuery(order_id=order_id), timeout=self.timeout)).data

    @invocation_handler
    async def cancel_order(self, order_id: str) -> None:
        with contextlib.suppress(StepAlreadyTakenError):  # cancelled before: cancelling is idempotent
            await self.commands.send(CancelOrderCommand(order_id=order_id), timeout=self.timeout)

    @invocation_handler
    async def stats(self) -> OrderStatsView:
        return (await self.queries.query(OrderStatsQuery(), timeout=self.timeout)).data


def create_app(edge: Bundle) -> FastAPI:
    """The order-inventory HTTP API over the invoker of the started ``edge`` bundle."""
    api = edge.invoker(OrderInventoryInvoker)
    app = with_error_handlers(FastAPI(title="order-inventory", description="The Evento order-inventory example."))

    @app.post("/products", status_code=201)
    async def create_product(request: Request) -> Response:
        body = await read_body(request, ProductBody)
        return json_response(await api.create_product(body.name, body.unit_price, body.stock), 201)

    @app.get("/products/{product_id}")
    async def product(product_id: str) -> Response:
        return json_response(await api.product(product_id))

    @app.post("/products/{product_id}/restock", status_code=202)
    async def restock(product_id: str, request: Request) -> Response:
        body = await read_body(request, RestockBody)
        await api.restock(product_id, body.units)
        return json_response({"productId": product_id, "units": body.units}, 202)

    add_customer_routes(app, api)

    @app.post("/orders", status_code=202)
    async def place_order(request: Request) -> Response:
        body = await read_body(request, OrderBody)
        require_uuid(body.order_id, "orderId")
        order, created = await api.place_order(body)
        return json_response(order, 202 if created else 200)

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> Response:
        return json_response(await api.order(order_id))

    @app.post("/orders/{order_id}/cancel", status_code=202)
    async def cancel(order_id: str) -> Response:
        await api.cancel_order(order_id)
        return json_response({"orderId": order_id}, 202)

    @app.get("/stats/orders")
    async def stats() -> Response:
        return json_response(await api.stats())

    return app
