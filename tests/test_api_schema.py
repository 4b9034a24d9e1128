"""The server's REST API fuzzed from its own OpenAPI document (``/api/openapi.json``) with schemathesis, as an admin
(every route open to it), against the real API (uvicorn) of a real server with the TodoList running.

Requests that follow the document and requests that break it are generated for every operation (those the other
areas add are covered as they land): no answer may be a server error, and every answer must be one the document
describes (status, content type, body schema). Bounded and deterministic: a fixed number of cases, derandomized.
The cluster's event stream is left out: it never ends, so it has no answer to check (its own tests read it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api_support import RunningApi, bearer, running_api

CASES = 400
# Valid requests may still name what does not exist (404), conflict with the state (409: a bundle online), find
# its instance away (503), ask what a route bounds beyond the schema (400, 422: a date before 1970, or one the
# stores cannot compare), or log in with a wrong password (401), so often that logins are throttled (429).
CONFIG = SchemathesisConfig.from_str(
    """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "404", "409", "422", "429", "503"]
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "409", "413", "414", "422", "431"]
"""
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]


@dataclass
class Fuzzed:
    """The API under test, a client of it, and the cases its OpenAPI document generates."""

    api: RunningApi
    cases: st.SearchStrategy[Any]


@pytest.fixture
async def fuzzed(tmp_path: Path) -> AsyncIterator[Fuzzed]:
    async with running_api(tmp_path) as api:
        invoker = api.system.invoker()
        identifier = await invoker.create_todo_list("seed", "alice")
        await invoker.add_todo(identifier, "milk", "alice")
        document = (await api.anonymous.get("/api/openapi.json")).json()
        schema = schemathesis.openapi.from_dict(document, config=CONFIG).exclude(path="/api/cluster-status/stream")
        admin = bearer(api.admin_token)
        cases = st.one_of(
            schema.as_strategy(GenerationMode.POSITIVE, headers=admin),
            schema.as_strategy(GenerationMode.NEGATIVE, headers=admin),
        )
        yield Fuzzed(api, cases)


async def send(client: httpx.AsyncClient, case: Any) -> httpx.Response:
    """Send a schemathesis case (its requests-style arguments) with the httpx client."""
    request = case.as_transport_kwargs(base_url=str(client.base_url))
    content = json.dumps(request["json"]).encode() if "json" in request else request.get("data")
    return await client.request(
        request["method"],
        request["url"],
        headers=request.get("headers"),
        params=request.get("params"),
        content=content,
    )


@settings(
    max_examples=CASES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
async def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    fuzzed: Fuzzed, data: st.DataObject
) -> None:
    case = data.draw(fuzzed.cases)
    response = await send(fuzzed.api.anonymous, case)
    case.validate_response(response, checks=CHECKS)
