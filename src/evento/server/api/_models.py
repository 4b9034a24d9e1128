"""The API's shared models: :class:`ApiModel` (camelCase JSON like the TodoList contract) and the paged list
:class:`Page` with its query parameters (:data:`PageQuery`: ``?page=`` 0-based, ``&size=`` 1 to 500).

>>> class Row(ApiModel):
...     bundle_id: str
>>> Page[Row].of([Row(bundle_id="a"), Row(bundle_id="b"), Row(bundle_id="c")], Paging(page=1, size=2)).model_dump()
{'items': [{'bundleId': 'c'}], 'total': 3, 'page': 1, 'size': 2}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["MAX_PAGE_SIZE", "ApiModel", "Page", "PageQuery", "Paging", "Problem", "epoch_ms", "instant", "paging"]

T = TypeVar("T")

#: The largest ``size`` a paged list accepts: a page stays a bounded response.
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


class ApiModel(BaseModel):
    """Base of the API's request and response bodies: fields in snake_case in Python, camelCase in JSON.

    Bodies are read by either name (``bundleId`` or ``bundle_id``) and written by alias, so every route answers in
    camelCase without saying so."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Page(ApiModel, Generic[T]):
    """One page of a list: ``items`` from position ``page * size``, and ``total`` items in the whole list."""

    items: list[T]
    total: int = Field(ge=0)
    page: int = Field(ge=0)
    size: int = Field(ge=1, le=MAX_PAGE_SIZE)

    @classmethod
    def of(cls, items: Sequence[T], paging: Paging) -> Page[T]:
        """The page ``paging`` asks for out of the whole list ``items`` (for lists built in memory)."""
        return cls(items=list(paging.slice(items)), total=len(items), page=paging.page, size=paging.size)

    @classmethod
    def sliced(cls, items: Sequence[T], total: int, paging: Paging) -> Page[T]:
        """A page whose ``items`` were already selected by the store (``LIMIT size OFFSET offset``)."""
        return cls(items=list(items), total=total, page=paging.page, size=paging.size)


@dataclass(frozen=True)
class Paging:
    """Which page of a list a request asks for: ``page`` (0-based, as the original's Spring API) of ``size``."""

    page: int = 0
    size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        """The position of the page's first item in the whole list."""
        return self.page * self.size

    def slice(self, items: Sequence[T]) -> Sequence[T]:
        """The items of this page out of the whole list."""
        return items[self.offset : self.offset + self.size]


def paging(
    page: Annotated[int, Query(ge=0, le=10_000_000, description="Page number, 0-based")] = 0,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page")] = DEFAULT_PAGE_SIZE,
) -> Paging:
    """The ``?page=&size=`` query parameters of a paged list (a FastAPI dependency)."""
    return Paging(page, size)


#: A route's paging parameters: ``paging: PageQuery`` in its signature.
PageQuery = Annotated[Paging, Depends(paging)]


def instant(epoch_ms: int) -> datetime:
    """A time the server keeps in epoch milliseconds as the API shows it (an ISO 8601 date-time in UTC)."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def epoch_ms(moment: datetime) -> int:
    """A date-time from a request in epoch milliseconds (a time without zone is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


class Problem(ApiModel):
    """An error answer (RFC 9457 ``application/problem+json``): ``detail`` is one line saying what went wrong."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
