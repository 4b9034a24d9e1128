"""The time range of the API's series (performance buckets, the publication rate): ``interval`` seconds wide
buckets over ``[from, to)``, the ends as RFC 3339 date-times read strictly (pydantic would also take numbers and
bare dates the OpenAPI document does not allow), defaulting to the hour up to now."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Query

from evento.server.telemetry import MAX_BUCKETS

__all__ = ["BAD_RANGE", "MAX_INTERVAL_S", "From", "Interval", "To", "time_range"]

#: The widest bucket: a year.
MAX_INTERVAL_S = 366 * 86_400
_HOUR_MS = 3_600_000
#: The last millisecond a datetime can hold (9999-12-31T23:59:59.999Z).
_LAST_MS = 253_402_300_799_999
BAD_RANGE: dict[int | str, dict[str, Any]] = {
    400: {"description": "The range is empty, outside 1970-9999, or holds too many buckets"}
}

Interval = Annotated[int, Query(ge=1, le=MAX_INTERVAL_S, description="Bucket width in seconds")]
# Times are RFC 3339 date-times (``2024-05-01T12:00:00Z``, ``…+02:00``), read here rather than by pydantic, which
# would also take numbers and bare dates the document does not allow.
_DATE_TIME = {"format": "date-time"}
From = Annotated[
    str | None,
    Query(
        alias="from",
        max_length=64,
        description="Start of the range, RFC 3339 (default: an hour before `to`)",
        json_schema_extra=_DATE_TIME,
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to", max_length=64, description="End of the range, excluded, RFC 3339 (default: now)",
        json_schema_extra=_DATE_TIME,
    ),
]  # fmt: skip
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


def _ms(text: str, name: str) -> int:
    """Epoch milliseconds of an RFC 3339 date-time; a 422 naming the parameter when it is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise HTTPException(422, f"`{name}` must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z, not {text!r}")
    date, clock, fraction, zone = match.groups()
    micros = f".{fraction[:6].ljust(6, '0')}" if fraction else ""  # datetime holds microseconds
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{micros}{'+00:00' if zone in 'Zz' else zone}")
        return round(moment.timestamp() * 1000)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"`{name}` is not a valid date-time: {exc}") from None


def time_range(interval: int, start: str | None, end: str | None) -> tuple[int, int]:
    """The range in epoch ms, refused with a 400 when it is empty, outside 1970-9999 or cut in too many buckets."""
    to_ms = _ms(end, "to") if end is not None else round(datetime.now(UTC).timestamp() * 1000)
    from_ms = _ms(start, "from") if start is not None else to_ms - _HOUR_MS
    if from_ms < 0:
        raise HTTPException(400, "`from` must not be before 1970-01-01T00:00:00Z")
    if to_ms > _LAST_MS:
        raise HTTPException(400, "`to` must not be after 9999-12-31T23:59:59.999Z")
    if to_ms <= from_ms:
        raise HTTPException(400, "`to` must be after `from`")
    buckets = -(-(to_ms - from_ms) // (interval * 1000))
    if buckets > MAX_BUCKETS:
        raise HTTPException(
            400, f"the range holds {buckets} buckets of {interval}s; at most {MAX_BUCKETS} (widen `interval`)"
        )
    return from_ms, to_ms
