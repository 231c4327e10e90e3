"""SQL backend of the LoRA adapter store (see :mod:`sona.lora.store`).

One row per version in ``lora_adapters``: the tensors' raw little-endian bytes concatenated
in a BLOB (``size_bytes`` is its length: no container overhead) and their names and shapes
in a JSON ``layout`` column. A unique (user, adapter, version) constraint makes concurrent
saves retry with the next version instead of duplicating one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Float,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column

from sona.db import make_engine
from sona.errors import DataError
from sona.lora.backend import SAVE_RETRIES, USER_MATRIX, AdapterBackend, AdapterInfo, replace_info

log = logging.getLogger(__name__)


# --- SQL backend -------------------------------------------------------------------------

class _Base(DeclarativeBase):
    pass


class _AdapterRow(_Base):
    __tablename__ = "lora_adapters"
    __table_args__ = (UniqueConstraint("user_id", "adapter_name", "version",
                                       name="uq_lora_adapter_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    adapter_name: Mapped[str] = mapped_column(String(64), default="default")
    version: Mapped[int] = mapped_column(Integer)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    dtype: Mapped[str] = mapped_column(String(16))
    dim: Mapped[int] = mapped_column(Integer)  # rows of B for SPEC adapters, else 0
    rank: Mapped[int] = mapped_column(Integer)
    scaling_factor: Mapped[float] = mapped_column(Float)
    training_iterations: Mapped[int] = mapped_column(Integer)
    last_trained_time: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    base_model_version: Mapped[str] = mapped_column(String(64), default="")
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    # JSON [[name, shape], ...]: how the BLOB splits into tensors
    layout: Mapped[str] = mapped_column(Text, default="")
    adapter_config: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class SqlBackend(AdapterBackend):
    """Adapters as BLOB rows in a relational store (``url``: a SQLAlchemy URL)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    def write(self, info: AdapterInfo, tensors: Mapping[str, NDArray[Any]]) -> AdapterInfo:
        blob = b"".join(np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<")).tobytes()
                        for t in tensors.values())
        layout = json.dumps([[name, list(t.shape)] for name, t in tensors.items()])
        only = next(iter(tensors.values()))
        dim = int(only.shape[0]) if len(tensors) == 1 and USER_MATRIX in tensors else 0
        for _ in range(SAVE_RETRIES):
            try:
                with Session(self.engine) as session, session.begin():
                    latest = session.scalar(select(func.max(_AdapterRow.version)).where(
                        _AdapterRow.user_id == info.user_id,
                        _AdapterRow.adapter_name == info.adapter_name))
                    stored = replace_info(info, version=int(latest or 0) + 1, size_bytes=len(blob))
                    session.add(_AdapterRow(
                        user_id=stored.user_id, adapter_name=stored.adapter_name,
                        version=stored.version, weights=blob, dtype=stored.dtype, dim=dim,
                        rank=stored.rank, scaling_factor=stored.scaling_factor,
                        training_iterations=stored.training_iterations,
                        last_trained_time=stored.last_trained_time, size_bytes=len(blob),
                        base_model_version=stored.base_model_version,
                        metrics=json.dumps(stored.metrics), layout=layout,
                        adapter_config=json.dumps(stored.config),
                        created_at=stored.last_trained_time,
                        updated_at=stored.last_trained_time))
                return stored
            except IntegrityError:
                log.debug("adapter version of %s taken, retrying", info.user_id)
        raise DataError(f"could not allocate an adapter version for user {info.user_id!r}")

    def read(self, user_id: str, adapter_name: str, version: int
              ) -> tuple[AdapterInfo, dict[str, NDArray[Any]]] | None:
        with Session(self.engine) as session:
            row = session.scalars(select(_AdapterRow).where(
                _AdapterRow.user_id == user_id, _AdapterRow.adapter_name == adapter_name,
                _AdapterRow.version == version)).first()
            if row is None:
                return None
            return _row_info(row), _split_blob(row)

    def read_latest(self, user_id: str, adapter_name: str
                    ) -> tuple[AdapterInfo, dict[str, NDArray[Any]]] | None:
        # one query instead of versions() + read()
        with Session(self.engine) as session:
            row = session.scalars(select(_AdapterRow).where(
                _AdapterRow.user_id == user_id, _AdapterRow.adapter_name == adapter_name,
            ).order_by(_AdapterRow.version.desc()).limit(1)).first()
            return (_row_info(row), _split_blob(row)) if row is not None else None

    def versions(self, user_id: str, adapter_name: str) -> list[int]:
        with Session(self.engine) as session:
            return [int(v) for v in session.scalars(select(_AdapterRow.version).where(
                _AdapterRow.user_id == user_id, _AdapterRow.adapter_name == adapter_name,
            ).order_by(_AdapterRow.version))]

    def list_adapters(self, user_id: str | None) -> list[AdapterInfo]:
        query = select(_AdapterRow).order_by(_AdapterRow.user_id, _AdapterRow.adapter_name,
                                             _AdapterRow.version)
        if user_id is not None:
            query = query.where(_AdapterRow.user_id == user_id)
        with Session(self.engine) as session:
            return [_row_info(r) for r in session.scalars(query.options(
                defer(_AdapterRow.weights)))]

    def delete(self, user_id: str, adapter_name: str | None) -> int:
        query = delete(_AdapterRow).where(_AdapterRow.user_id == user_id)
        if adapter_name is not None:
            query = query.where(_AdapterRow.adapter_name == adapter_name)
        with Session(self.engine) as session, session.begin():
            return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]

    def stats(self) -> dict[str, float]:
        with Session(self.engine) as session:
            n, users, total = session.execute(select(
                func.count(_AdapterRow.id), func.count(func.distinct(_AdapterRow.user_id)),
                func.coalesce(func.sum(_AdapterRow.size_bytes), 0))).one()
        return {"adapters": int(n), "users": int(users), "total_bytes": int(total),
                "mean_bytes": float(total) / n if n else 0.0}


def _row_info(row: _AdapterRow) -> AdapterInfo:
    return AdapterInfo(
        user_id=row.user_id, adapter_name=row.adapter_name, version=row.version,
        rank=row.rank, scaling_factor=row.scaling_factor,
        training_iterations=row.training_iterations, last_trained_time=row.last_trained_time,
        size_bytes=row.size_bytes, base_model_version=row.base_model_version,
        metrics=json.loads(row.metrics), dtype=row.dtype,
        config=json.loads(row.adapter_config or "{}"))


def _split_blob(row: _AdapterRow) -> dict[str, NDArray[Any]]:
    dtype = np.dtype(row.dtype).newbyteorder("<")
    if not row.layout:  # rows written before layouts existed: one B matrix
        return {USER_MATRIX: np.frombuffer(row.weights, dtype).reshape(row.dim, row.rank)}
    out, offset = {}, 0
    for name, shape in json.loads(row.layout):
        n = int(np.prod(shape, dtype=np.int64))
        out[name] = np.frombuffer(row.weights, dtype, count=n, offset=offset).reshape(shape)
        offset += n * dtype.itemsize
    if offset != len(row.weights):
        raise DataError(f"adapter BLOB of user {row.user_id!r} v{row.version} has "
                        f"{len(row.weights)} bytes, its layout {offset}")
    return out



__all__ = ["SqlBackend"]
