"""What both example edges share: the customer operations of their invokers and the four customer routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from evento import Invoker, invocation_handler
from evento.demo.shared.customers import (
    CreateCustomerCommand,
    CustomerNotificationsQuery,
    CustomerView,
    CustomerViewQuery,
    DepositCommand,
)
from evento.demo.shared.errors import NotFoundError
from evento.demo.shared.http import json_response, new_id, read_body

__all__ = ["VIEW_WAIT", "CustomerInvoker", "Id", "Name", "Positive", "add_customer_routes", "until_found"]

#: How long a create waits for its view (and a replayed order or booking for its view) before answering anyway.
VIEW_WAIT = 3.0
T = TypeVar("T")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=10**12)]


class CustomerBody(msgspec.Struct):
    name: Name
    balance: Annotated[int, msgspec.Meta(ge=0, le=10**15)]


class DepositBody(msgspec.Struct):
    amount: Positive


async def until_found(read: Callable[[], Awaitable[T]], seconds: float = VIEW_WAIT) -> T | None:
    """``read()`` once it stops raising :class:`NotFoundError`, or ``None`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await read()
        except NotFoundError:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.02)


class CustomerInvoker(Invoker):
    """The customer operations of an edge's invoker (subclasses add their system's own)."""

    timeout = 20.0
    #: The field naming an order or a booking in notifications: ``orderId`` or ``bookingId``.
    reference_key = "reference"

    @invocation_handler
    async def create_customer(self, name: str, balance: int) -> CustomerView:
        customer_id = new_id()
        command = CreateCustomerCommand(customer_id=customer_id, name=name, balance=balance)
        await self.commands.send(command, timeout=self.timeout)
        await until_found(lambda: self.customer(customer_id))
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
            {self.reference_key: n.reference, "status": n.status, **({"reason": n.reason} if n.reason else {})}
            for n in found.data
        ]


def add_customer_routes(app: FastAPI, api: CustomerInvoker) -> None:
    """``POST /customers``, ``GET /customers/{id}``, ``POST /customers/{id}/deposit`` and
    ``GET /customers/{id}/notifications`` (contract B.2, shared by C.2)."""

    @app.post("/customers", status_code=201)
    async def create_customer(request: Request) -> Response:
        body = await read_body(request, CustomerBody)
        return json_response(await api.create_customer(body.name, body.balance), 201)

    @app.get("/customers/{customer_id}")
    async def customer(customer_id: str) -> Response:
        return json_response(await api.customer(customer_id))

    @app.post("/customers/{customer_id}/deposit", status_code=202)
    async def deposit(customer_id: str, request: Request) -> Response:
        body = await read_body(request, DepositBody)
        await api.deposit(customer_id, body.amount)
        return json_response({"customerId": customer_id, "amount": body.amount}, 202)

    @app.get("/customers/{customer_id}/notifications")
    async def notifications(customer_id: str) -> Response:
        return json_response(await api.notifications(customer_id))
