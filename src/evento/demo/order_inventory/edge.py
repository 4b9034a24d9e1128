"""The ``edge`` service: the invoker and the public HTTP API of order-inventory (contract part B.2).

Writes return once their event is stored (so a restock sent right after a 201 finds its product); an order is
only recorded here, the saga decides it. Creates answer once the new entity is also in its view (or after
:data:`VIEW_WAIT` seconds), so a client reading right after a 201 usually finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from evento import AggregateInitializedError, Bundle, Invoker, invocation_handler, invoker
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
from evento.demo.shared.customers import (
    CreateCustomerCommand,
    CustomerNotificationsQuery,
    CustomerView,
    CustomerViewQuery,
    DepositCommand,
)
from evento.demo.shared.errors import NotFoundError, StepAlreadyTakenError
from evento.demo.shared.http import json_response, new_id, read_body, require_uuid, with_error_handlers

__all__ = ["OrderInventoryInvoker", "create_app"]

#: How long a create waits for its view, and a replayed order for the order's view, before answering anyway.
VIEW_WAIT = 3.0
T = TypeVar("T")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Cents = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
Units = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=10**12)]


class ProductBody(msgspec.Struct, rename="camel"):
    name: Name
    unit_price: Annotated[int, msgspec.Meta(ge=1, le=10**9)]
    stock: Units


class RestockBody(msgspec.Struct):
    units: Positive


class CustomerBody(msgspec.Struct):
    name: Name
    balance: Cents


class DepositBody(msgspec.Struct):
    amount: Positive


class OrderBody(msgspec.Struct, rename="camel"):
    order_id: Id
    customer_id: Id
    product_id: Id
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10**6)]


async def _until_found(read: Callable[[], Awaitable[T]], seconds: float) -> T | None:
    """``read()`` once it stops raising :class:`NotFoundError`, or ``None`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await read()
        except NotFoundError:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.02)


@invoker()
class OrderInventoryInvoker(Invoker):
    """What the HTTP API offers, as commands and queries."""

    timeout = 20.0

    @invocation_handler
    async def create_product(self, name: str, unit_price: int, stock: int) -> ProductView:
        product_id = new_id()
        await self.commands.send(
            CreateProductCommand(product_id=product_id, name=name, unit_price=unit_price, stock=stock),
            timeout=self.timeout,
        )
        created = ProductView(id=product_id, name=name, unit_price=unit_price, stock=stock)
        await _until_found(lambda: self.product(product_id), VIEW_WAIT)
        return created

    @invocation_handler
    async def restock(self, product_id: str, units: int) -> None:
        await self.commands.send(RestockProductCommand(product_id=product_id, units=units), timeout=self.timeout)

    @invocation_handler
    async def product(self, product_id: str) -> ProductView:
        return (await self.queries.query(ProductViewQuery(product_id=product_id), timeout=self.timeout)).data

    @invocation_handler
    async def create_customer(self, name: str, balance: int) -> CustomerView:
        customer_id = new_id()
        await self.commands.send(
            CreateCustomerCommand(customer_id=customer_id, name=name, balance=balance), timeout=self.timeout
        )
        await _until_found(lambda: self.customer(customer_id), VIEW_WAIT)
        return CustomerView(id=customer_id, name=name, balance=balance)

    @invocation_handler
    async def deposit(self, customer_id: str, amount: int) -> None:
        await self.commands.send(DepositCommand(customer_id=customer_id, amount=amount), timeout=self.timeout)

    @invocation_handler
    async def customer(self, customer_id: str) -> CustomerView:
        return (await self.queries.query(CustomerViewQuery(customer_id=customer_id), timeout=self.timeout)).data

    @invocation_handler
    async def notifications(self, customer_id: str) -> list[dict[str, Any]]:
        found = await self.queries.query(CustomerNotificationsQuery(customer_id=customer_id), timeout=self.timeout)
        return [
            {"orderId": n.reference, "status": n.status, **({"reason": n.reason} if n.reason else {})}
            for n in found.data
        ]

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
            known = await _until_found(lambda: self.order(body.order_id), VIEW_WAIT)
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
    async def create_product(request: Request) -> JSONResponse:
        body = await read_body(request, ProductBody)
        return json_response(await api.create_product(body.name, body.unit_price, body.stock), 201)

    @app.get("/products/{product_id}")
    async def product(product_id: str) -> JSONResponse:
        return json_response(await api.product(product_id))

    @app.post("/products/{product_id}/restock", status_code=202)
    async def restock(product_id: str, request: Request) -> JSONResponse:
        body = await read_body(request, RestockBody)
        await api.restock(product_id, body.units)
        return json_response({"productId": product_id, "units": body.units}, 202)

    @app.post("/customers", status_code=201)
    async def create_customer(request: Request) -> JSONResponse:
        body = await read_body(request, CustomerBody)
        return json_response(await api.create_customer(body.name, body.balance), 201)

    @app.get("/customers/{customer_id}")
    async def customer(customer_id: str) -> JSONResponse:
        return json_response(await api.customer(customer_id))

    @app.post("/customers/{customer_id}/deposit", status_code=202)
    async def deposit(customer_id: str, request: Request) -> JSONResponse:
        body = await read_body(request, DepositBody)
        await api.deposit(customer_id, body.amount)
        return json_response({"customerId": customer_id, "amount": body.amount}, 202)

    @app.get("/customers/{customer_id}/notifications")
    async def notifications(customer_id: str) -> JSONResponse:
        return json_response(await api.notifications(customer_id))

    @app.post("/orders", status_code=202)
    async def place_order(request: Request) -> JSONResponse:
        body = await read_body(request, OrderBody)
        require_uuid(body.order_id, "orderId")
        order, created = await api.place_order(body)
        return json_response(order, 202 if created else 200)

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> JSONResponse:
        return json_response(await api.order(order_id))

    @app.post("/orders/{order_id}/cancel", status_code=202)
    async def cancel(order_id: str) -> JSONResponse:
        await api.cancel_order(order_id)
        return json_response({"orderId": order_id}, 202)

    @app.get("/stats/orders")
    async def stats() -> JSONResponse:
        return json_response(await api.stats())

    return app
