"""JSON scalars of request bodies as the OpenAPI document declares them (issue 13).

pydantic's lax mode reads ``false`` as the number 0, ``0`` as the boolean false, ``"12"`` as
the integer 12 and ``"0"`` as 1970-01-01: bodies the document calls schema-violating were
answered 200 (schemathesis). Request-body fields use these types instead:

- :data:`Bool`: ``true`` or ``false`` only;
- :data:`Int`: a JSON integer; ``5.0`` is one too (JSON Schema counts a number with a zero
  fraction as an integer), booleans and strings are not;
- :data:`Number`: a JSON number (integers included), never a boolean or a string;
- :data:`DateTime`: an RFC 3339 date-time string (``2024-05-01T20:00:00Z``; a time without
  an offset is read as UTC);
- :data:`Timestamp`: a :data:`DateTime` string or Unix seconds in ``[0, 10^10]`` (pydantic
  would read larger numbers as milliseconds); :data:`QueryTimestamp` the same in a query,
  or a date.

Patterns use :data:`NOT_BLANK` rather than ``\\S``, and request models check patterns with
Python's ``re`` (``regex_engine="python-re"``), so the server reads each declared pattern as
the document's validators do.

Query and path models stay lax: a query string is text, ``?limit=20`` is the integer 20.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict, WithJsonSchema

#: whitespace as ECMA-262 (JSON Schema patterns), Python's ``str.isspace``/``re`` and Unicode
#: White_Space (Rust: pydantic's default regex and ``str_strip_whitespace``) define it, all
#: together and written out, so ``\s`` meaning three things cannot split document and server
WHITESPACE = (r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
              r"\ufeff")
#: a ``pattern`` saying "not blank": one character that is no whitespace of any definition
NOT_BLANK = f"[^{WHITESPACE}]"
#: largest Unix-seconds timestamp accepted (2286-11-20); pydantic reads more as milliseconds
MAX_UNIX_SECONDS = 10_000_000_000
#: an RFC 3339 date-time (``T`` or a space between date and time; the offset optional)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _date_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value.strip()):
        raise ValueError("expected an RFC 3339 date-time string, e.g. 2024-05-01T20:00:00Z")
    return value.strip()


def _timestamp(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _date_time(value)
    if not 0 <= value <= MAX_UNIX_SECONDS:
        raise ValueError(f"Unix seconds must lie in [0, {MAX_UNIX_SECONDS}], got {value}")
    return datetime.fromtimestamp(value, UTC)


def _query_timestamp(value: Any) -> Any:
    if isinstance(value, str):
        if _DATE.fullmatch(value.strip()):
            return value.strip() + "T00:00:00Z"
        try:
            value = float(value)
        except ValueError:
            return _date_time(value)
    return _timestamp(value)


#: what makes an ``int`` an :data:`Int`; an optional bounded integer puts its bounds first,
#: ``Annotated[int, Field(ge=1), *INT] | None``, or pydantic drops them from the JSON Schema
INT = (Strict(), BeforeValidator(_integral))

Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict(), BeforeValidator(_integral)]
Number = Annotated[float, Strict()]
DateTime = Annotated[datetime, BeforeValidator(_date_time),
                     WithJsonSchema({"type": "string", "format": "date-time"})]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp), WithJsonSchema({"anyOf": [
    {"type": "string", "format": "date-time"},
    {"type": "number", "minimum": 0, "maximum": MAX_UNIX_SECONDS}]})]
#: :data:`Timestamp` in a query string, where Unix seconds arrive as text (``?since=1.7e9``),
#: or a date (``?since=2024-05-01``: its midnight UTC)
QueryTimestamp = Annotated[datetime, BeforeValidator(_query_timestamp), WithJsonSchema({
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
              {"type": "number", "minimum": 0, "maximum": MAX_UNIX_SECONDS}]})]

__all__ = ["INT", "MAX_UNIX_SECONDS", "NOT_BLANK", "WHITESPACE", "Bool", "DateTime", "Int",
           "Number", "QueryTimestamp", "Timestamp"]
