"""Timestamps on the wire: UTC, ISO 8601 with milliseconds and a 'Z', in every server's answers.

Stores keep Unix seconds (cheap to compare and index); a model field typed `UtcTimestamp`
takes those seconds (or a datetime, or an ISO string) and writes them as e.g.
'2026-05-01T12:00:00.000Z', so an agent reads one format whichever server it asks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema


def to_datetime(value: Any) -> Any:
    """Unix seconds become an aware UTC datetime; a naive datetime is taken as UTC; anything else is pydantic's."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso_utc(moment: datetime | float) -> str:
    """`moment` (a datetime, or Unix seconds) in UTC as ISO 8601 with milliseconds and a trailing 'Z'."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(to_datetime),
    PlainSerializer(iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
    Field(description="UTC, ISO 8601, e.g. 2026-05-01T12:00:00.000Z."),
]
"""A moment in time; Unix seconds in, ISO 8601 UTC out."""
