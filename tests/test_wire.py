"""JSON scalars of request bodies (sona.wire): what the OpenAPI document declares is what
validation accepts (schemathesis, issue 13)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sona.wire import INT, NOT_BLANK, Bool, DateTime, Int, Number, QueryTimestamp, Timestamp


class Body(BaseModel):
    model_config = ConfigDict(regex_engine="python-re", str_strip_whitespace=True)

    flag: Bool = False
    count: Int = 0
    share: Number = 0.0
    rating: Annotated[int, Field(ge=1, le=5), *INT] | None = None
    at: Timestamp | None = None
    on: DateTime | None = None
    since: QueryTimestamp | None = None
    name: str = Field("x", min_length=1, pattern=NOT_BLANK)


def accepts(**fields: Any) -> bool:
    try:
        Body.model_validate(fields)
    except ValidationError:
        return False
    return True


def test_scalars_are_their_json_types() -> None:
    assert accepts(flag=True) and not accepts(flag=0) and not accepts(flag="true")
    assert accepts(count=5) and Body.model_validate({"count": 5.0}).count == 5
    assert not accepts(count=True) and not accepts(count="5") and not accepts(count=5.5)
    assert accepts(share=1) and accepts(share=0.5)
    assert not accepts(share=False) and not accepts(share="0.5")


def test_optional_bounded_int_keeps_its_bounds_in_the_schema() -> None:
    rating = Body.model_json_schema()["properties"]["rating"]["anyOf"][0]
    assert rating == {"type": "integer", "minimum": 1, "maximum": 5}
    assert accepts(rating=5.0) and not accepts(rating=0) and not accepts(rating=True)


def test_timestamps() -> None:
    assert Body.model_validate({"at": 0}).at == datetime(1970, 1, 1, tzinfo=UTC)
    assert accepts(at="2024-05-01T20:00:00Z") and accepts(at=1.7e9)
    assert not accepts(at=-1) and not accepts(at=1e11)  # pydantic would read 1e11 as ms
    assert not accepts(at=True) and not accepts(at="1700000000") and not accepts(at="0")
    assert accepts(on="2024-05-01T20:00:00+02:00") and not accepts(on=0)
    assert Body.model_validate({"since": "2024-05-01"}).since == datetime(2024, 5, 1,
                                                                          tzinfo=UTC)
    assert accepts(since="1.7e9") and not accepts(since="yesterday")


@pytest.mark.parametrize("blank", [" ", "\u0085", "\u001c", "\u3000", "\ufeff", "\t\n"])
def test_not_blank_means_the_same_to_every_reader(blank: str) -> None:
    # ECMA, Python and Rust disagree on what \s is; NOT_BLANK lists all of them
    assert not re.search(NOT_BLANK, blank)
    assert not accepts(name=blank)
    assert accepts(name=f"{blank}a{blank}")
