"""Runs the consumer state store contract (:class:`evento.testing.consumer_store_cases.ConsumerStoreCases`) on
every backend of the registry (:data:`evento.testing.databases.BACKENDS`), each opened from its store URL.

PostgreSQL and MariaDB/MySQL cases get a throwaway database each; the durability case reopens the same URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evento.consumer_stores import ConsumerStateStore, open_consumer_store
from evento.testing.consumer_store_cases import ConsumerStoreCases
from evento.testing.databases import BACKENDS, store_url


class TestConsumerStores(ConsumerStoreCases):
    url = ""

    @pytest.fixture(autouse=True, params=BACKENDS)
    def _backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
        with store_url(request.param, tmp_path, "consumer-state.db") as url:
            self.url = url
            yield

    def open_store(self, storage: Path) -> ConsumerStateStore:
        return open_consumer_store(self.url, data_dir=storage)
