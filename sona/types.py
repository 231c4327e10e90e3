"""Array types shared by every SONA component; shapes are documented here once.

- ``IdArray``: external ids (ints or strings), shape ``(n,)`` or ``(n_queries, k)``.
- ``IndexArray``: contiguous int64 indices into an :class:`~sona.data.ids.IdIndex`.
- ``ScoreArray``: float scores, higher is better.
- :class:`Recommendations`: a batch of ranked lists, always 2-D ``(n_queries, k)``.
  Rows with fewer than ``k`` results are padded with ``PAD_ID`` (or ``PAD_STR`` for
  string ids) and a NaN score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

IdArray = NDArray[Any]
IndexArray = NDArray[np.int64]
ScoreArray = NDArray[np.floating[Any]]

PAD_ID: int = -1
PAD_STR: str = ""
PAD_IDX: int = -1


def pad_value(dtype: np.dtype[Any]) -> Any:
    """Padding id for an id array of ``dtype`` (-1 for integers, "" otherwise)."""
    return PAD_ID if np.issubdtype(dtype, np.integer) else PAD_STR


@dataclass(frozen=True, slots=True)
class Recommendations:
    """Top-k lists for a batch of queries (users or items).

    Attributes:
        ids: external ids, shape ``(n_queries, k)``; padded with ``PAD_ID``/``PAD_STR``.
        scores: float scores, shape ``(n_queries, k)``, descending within each row; NaN
            where padded.
    """

    ids: IdArray
    scores: ScoreArray

    def __post_init__(self) -> None:
        if self.ids.ndim != 2 or self.ids.shape != self.scores.shape:
            raise ValueError(
                f"Recommendations need 2-D ids and scores of one shape, got "
                f"{self.ids.shape} and {self.scores.shape}"
            )

    @property
    def k(self) -> int:
        """List length (columns)."""
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def valid(self) -> NDArray[np.bool_]:
        """Boolean mask of real (non-padded) entries, shape ``(n_queries, k)``."""
        return ~np.isnan(self.scores)

    @classmethod
    def from_lists(cls, rows: Any, scores: Any = None, *, k: int | None = None,
                   string_ids: bool = False) -> Recommendations:
        """Ragged ranked lists (e.g. from an HTTP response) as a padded batch.

        Args:
            rows: one list of ids per query, best first.
            scores: matching lists of scores; None gives ``k - position`` (rank order).
            k: width (default: the longest row).
            string_ids: pad with ``PAD_STR`` instead of ``PAD_ID``.

        Raises:
            ValueError: a scores row of another length than its ids row.
        """
        rows = [list(r) for r in rows]
        width = max((len(r) for r in rows), default=0) if k is None else int(k)
        ids = np.full((len(rows), width), PAD_STR if string_ids else PAD_ID,
                      dtype=object if string_ids else np.int64)
        out = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            r = r[:width]
            s = list(range(width, width - len(r), -1)) if scores is None else list(scores[i])
            if len(s) < len(r):
                raise ValueError(f"row {i}: {len(r)} ids but {len(s)} scores")
            ids[i, :len(r)] = r
            out[i, :len(r)] = s[:len(r)]
        return cls(ids, out)

    def row(self, i: int) -> list[tuple[Any, float]]:
        """The ``i``-th list as ``[(id, score), ...]`` without padding."""
        mask = self.valid[i]
        return [(x.item() if hasattr(x, "item") else x, float(s))
                for x, s in zip(self.ids[i][mask], self.scores[i][mask], strict=True)]

    def to_frame(self, query_ids: IdArray, query_col: str = "user_id") -> pd.DataFrame:
        """Long table ``(query_col, item_id, score, rank)`` without padded entries.

        Ranks are 1-based.
        """
        n, k = self.ids.shape
        if len(query_ids) != n:
            raise ValueError(f"{len(query_ids)} query ids for {n} recommendation rows")
        mask = self.valid.ravel()
        frame = pd.DataFrame(
            {
                query_col: np.repeat(np.asarray(query_ids), k)[mask],
                "item_id": self.ids.ravel()[mask],
                "score": self.scores.ravel()[mask],
                "rank": np.tile(np.arange(1, k + 1), n)[mask],
            }
        )
        return frame
