"""Wire schemas of the sync service (pydantic; unknown fields are errors).

Operations are a union discriminated by ``kind``, so a bad operation is a 400 naming the
exact field (``ops.0.progress.value.duration_s``). Ids follow the serving API: user ids are
1-128 characters (integers accepted), device ids are 1-64 of ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sona.sync.clock import ClockError, Timestamp
from sona.sync.document import Operation
from sona.wire import NOT_BLANK, Number

DeviceType = Literal["tv", "mobile", "desktop", "tablet", "web", "assistant"]


#: the wire form of an id: 1-128 characters, not all blank, or an integer of at most 128 digits
_ID_SCHEMA = WithJsonSchema({"anyOf": [
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NOT_BLANK},
    {"type": "integer", "minimum": -(10**127 - 1), "maximum": 10**128 - 1}]})


def _id_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():  # 5.0 is the JSON integer 5
        return str(int(value))
    return value


UserId = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=128,
                                                            pattern=NOT_BLANK), _ID_SCHEMA]
DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ContentKey = Annotated[str, BeforeValidator(_id_text), Field(min_length=1, max_length=128,
                                                            pattern=NOT_BLANK), _ID_SCHEMA]
# "<15-digit wall ms>.<6-digit counter>.<node>" (sona.sync.clock.Timestamp); the node is a
# device id or "server", so the whole stamp is one pattern (the document states it as is)
Stamp = Annotated[str, Field(min_length=24, max_length=87,
                             pattern=r"^[0-9]{15}\.[0-9]{6}\.[A-Za-z0-9_-]{1,64}$")]


def _check_stamp(value: str) -> str:
    try:
        Timestamp.parse(value)
    except ClockError as exc:
        raise ValueError(str(exc)) from None
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re", str_strip_whitespace=True)


class RegisterDeviceRequest(_Model):
    """``POST /api/v1/sync/devices``; ``device_id`` is generated when absent."""

    user_id: UserId
    device_id: DeviceId | None = None
    name: str = Field("", max_length=128)
    device_type: DeviceType = "mobile"


class _OpBase(_Model):
    op_id: str = Field(min_length=1, max_length=160, pattern=NOT_BLANK)
    device_id: DeviceId
    ts: Stamp
    key: ContentKey

    _stamp = field_validator("ts")(_check_stamp)

    @model_validator(mode="after")
    def _stamp_node_is_device(self) -> _OpBase:
        if Timestamp.parse(self.ts).node != self.device_id:
            raise ValueError(f"ts: the stamp's node must be the device_id {self.device_id!r}")
        return self


class WatchlistAddIn(_OpBase):
    """Add ``key`` (a content id) to the watchlist."""

    kind: Literal["watchlist_add"]

    def to_operation(self) -> Operation:
        return Operation(self.op_id, self.device_id, Timestamp.parse(self.ts), self.kind,
                         self.key)


class WatchlistRemoveIn(_OpBase):
    """Remove ``key`` from the watchlist: the add ``tags`` the device had observed."""

    kind: Literal["watchlist_remove"]
    tags: list[Annotated[str, Field(min_length=1, max_length=160, pattern=NOT_BLANK)]] = Field(
        max_length=1000)

    def to_operation(self) -> Operation:
        return Operation(self.op_id, self.device_id, Timestamp.parse(self.ts), self.kind,
                         self.key, None, tuple(self.tags))


class ProgressValue(_Model):
    """Playback position of one title."""

    position_s: Number = Field(ge=0.0, description="seconds watched")
    duration_s: Number = Field(gt=0.0, le=86_400.0, description="running time in seconds")

    @model_validator(mode="after")
    def _within(self) -> ProgressValue:
        if self.position_s > self.duration_s:
            raise ValueError("position_s: must not exceed duration_s")
        return self


class ProgressIn(_OpBase):
    """Set the playback progress of ``key`` (last writer wins)."""

    kind: Literal["progress"]
    value: ProgressValue

    def to_operation(self) -> Operation:
        return Operation(self.op_id, self.device_id, Timestamp.parse(self.ts), self.kind,
                         self.key, self.value.model_dump())


SettingValue = str | int | float | bool | None | list[Any] | dict[str, Any]


class SettingIn(_OpBase):
    """Set the setting ``key`` to a JSON value (last writer wins)."""

    kind: Literal["setting"]
    value: SettingValue

    def to_operation(self) -> Operation:
        return Operation(self.op_id, self.device_id, Timestamp.parse(self.ts), self.kind,
                         self.key, self.value)


OperationIn = Annotated[WatchlistAddIn | WatchlistRemoveIn | ProgressIn | SettingIn,
                        Field(discriminator="kind")]


class PushRequest(_Model):
    """``POST /api/v1/sync/push``: operations of one device, oldest first."""

    user_id: UserId
    device_id: DeviceId
    ops: list[OperationIn] = Field(min_length=1, max_length=1000)


class PullRequest(_Model):
    """``GET /api/v1/sync/pull`` query: operations stored after the ``since`` cursor."""

    user_id: UserId
    device_id: DeviceId
    since: Stamp | None = None
    limit: int = Field(500, ge=1, le=1000)

    _stamp = field_validator("since")(lambda v: v if v is None else _check_stamp(v))


__all__ = ["DeviceType", "OperationIn", "ProgressIn", "ProgressValue", "PullRequest",
           "PushRequest", "RegisterDeviceRequest", "SettingIn", "WatchlistAddIn",
           "WatchlistRemoveIn"]
