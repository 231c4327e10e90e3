"""The served model: an exported bundle loaded into ONNX Runtime, swapped atomically.

:class:`LoadedModel` is immutable once built; a request reads ``store.current`` once and
uses that object to the end, so a swap never mixes two versions inside one request.
:class:`ModelStore` loads a new version on a background thread, warms it up with a real
scoring call, and only then replaces the single ``_current`` reference (an atomic
assignment), so in-flight and new requests never fail during a swap. The champion version
comes from a resolver (the MLflow registry alias, polled) or is pinned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from sona import io
from sona.data.ids import IdIndex
from sona.errors import DataError
from sona.serving.bundle import TIME_WINDOWS, read_manifest
from sona.serving.errors import ApiError

log = logging.getLogger(__name__)

Scores = NDArray[np.float32]


def _csr(arrays: dict[str, NDArray[Any]], prefix: str, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((arrays[f"{prefix}__data"], arrays[f"{prefix}__indices"],
                          arrays[f"{prefix}__indptr"]), shape=shape)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One exported version, ready to score (see :mod:`sona.serving.export_onnx`)."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any]
    users: IdIndex
    items: IdIndex
    scorer: Any  # onnxruntime.InferenceSession
    content: Any
    ranker: Any
    seen: sp.csr_matrix  # users x items training interactions
    user_factors: NDArray[np.float32] | None  # factor models only
    item_factors: NDArray[np.float32] | None
    user_proj: NDArray[np.float32] | None  # two-tower user projection W (input side)
    popularity: NDArray[np.float32]  # distinct users per item
    item_vectors: NDArray[np.float32]  # (n_items, D) content vectors
    lora_base: NDArray[np.float32]  # shared LoRA A (rank, D)
    genres: NDArray[np.bool_]  # (n_items, n_genres) indicators, dense for column lookups
    genre_names: tuple[str, ...]
    time_of_day: NDArray[np.float32] | None  # (4, n_items) or None
    index: Any  # FaissIndex over item vectors
    loaded_at: float

    @property
    def n_items(self) -> int:
        """Number of servable items."""
        return len(self.items)

    @property
    def dim(self) -> int:
        """Content / preference vector dimension D."""
        return int(self.item_vectors.shape[1])

    @property
    def lora_rank(self) -> int:
        """LoRA rank r."""
        return int(self.lora_base.shape[0])

    def genre_column(self, genre: str) -> int | None:
        """Column of ``genre`` in :attr:`genres`, None when unknown."""
        try:
            return self.genre_names.index(genre)
        except ValueError:
            return None

    def item_genres(self, item_idx: int) -> list[str]:
        """Genre names of one item."""
        return [self.genre_names[c] for c in np.flatnonzero(self.genres[item_idx])]

    def window_popularity(self, time_of_day: str) -> NDArray[np.float32] | None:
        """Per-item counts in one SPEC §2.6 window, or None without timestamps."""
        if self.time_of_day is None:
            return None
        return self.time_of_day[list(TIME_WINDOWS).index(time_of_day)]

    # --- graph calls (batched) -----------------------------------------------------------

    def user_inputs(self, user_idx: NDArray[np.int64]) -> NDArray[np.float32]:
        """Scorer inputs of known users, ``(B, f)`` factors or ``(B, n_items)`` rows."""
        if self.user_factors is not None:
            return self.user_factors[user_idx]
        rows = self.seen[user_idx]
        if self.manifest["scorer_meta"].get("binary_inputs", True):
            rows = (rows > 0).astype(np.float32)
        return rows.toarray().astype(np.float32)

    def fold_in(self, item_idx: NDArray[np.int64]) -> NDArray[np.float32]:
        """Scorer input ``(1, ·)`` for a user the model was not trained on, from watched items.

        Item-item models take the interaction row as is; factor models solve the ALS user
        step ``(VᵀV + α·V_sᵀV_s + λI)·u = (1 + α)·Σ v_s`` over the watched items ``s``
        (two-tower models then map ``u`` back through the user projection).
        """
        if self.item_factors is None:
            row = np.zeros((1, self.n_items), np.float32)
            row[0, item_idx] = 1.0
            return row
        meta = self.manifest["scorer_meta"]
        v = self.item_factors.astype(np.float64)
        vs = v[item_idx]
        alpha, reg = meta["alpha"], meta["regularization"]
        lhs = v.T @ v + alpha * vs.T @ vs + reg * np.eye(v.shape[1])
        rhs = (1.0 + alpha) * vs.sum(axis=0)
        user = np.linalg.solve(lhs, rhs)
        if self.user_proj is not None:  # two-tower: the graph's input is before user_proj
            user = np.linalg.lstsq(self.user_proj.astype(np.float64), user, rcond=None)[0]
        return user[None, :].astype(np.float32)

    def collaborative(self, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Scorer graph: ``(B, ·) -> (B, n_items)``."""
        (scores,) = self.scorer.run(None, {self.manifest["scorer_input"]: inputs})
        return scores

    def content_scores(self, preference: NDArray[np.float32],
                       lora_b: NDArray[np.float32]) -> tuple[Scores, Scores]:
        """Content graph: ``(B, D), (B, D, r) -> content (B, n), lora (B, n)``."""
        content, lora = self.content.run(None, {"preference": preference, "lora_b": lora_b})
        return content, lora

    def rank(self, sources: NDArray[np.float32], weights: NDArray[np.float32],
             lora: NDArray[np.float32], lora_boost: NDArray[np.float32],
             exclude: NDArray[np.bool_]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Ranker graph: top-K blended scores and item indices (``-inf`` = not eligible)."""
        scores, idx = self.ranker.run(None, {"sources": sources, "weights": weights,
                                             "lora": lora, "lora_boost": lora_boost,
                                             "exclude": exclude})
        return scores, idx


def load_bundle(path: str | Path, *, onnx_threads: int = 1) -> LoadedModel:
    """Load an exported bundle folder into a :class:`LoadedModel`.

    Raises:
        DataError: not a bundle, or a file is missing.
    """
    import onnxruntime as ort

    from sona.search.faiss_index import FaissIndex

    root = Path(path)
    manifest = read_manifest(root)
    _, arrays, ids = io.load_model_dir(root / "arrays")
    users, items = IdIndex(ids["user"], kind="user"), IdIndex(ids["item"], kind="item")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = onnx_threads
    opts.inter_op_num_threads = 1
    sessions = {}
    for graph in ("scorer", "content", "ranker"):
        file = root / f"{graph}.onnx"
        if not file.exists():
            raise DataError(f"bundle lacks {graph}.onnx", path=root)
        sessions[graph] = ort.InferenceSession(str(file), opts, providers=["CPUExecutionProvider"])
    n_users, n_items = len(users), len(items)
    genre_names = tuple(manifest["genres"])
    return LoadedModel(
        name=str(manifest["name"]), version=str(manifest["version"]), path=root,
        manifest=manifest, users=users, items=items, scorer=sessions["scorer"],
        content=sessions["content"], ranker=sessions["ranker"],
        seen=_csr(arrays, "seen", (n_users, n_items)),
        user_factors=arrays.get("user_factors"), item_factors=arrays.get("item_factors"),
        user_proj=arrays.get("user_proj"),
        popularity=arrays["popularity"], item_vectors=arrays["item_vectors"],
        lora_base=arrays["lora_base"],
        genres=_csr(arrays, "genres", (n_items, len(genre_names))).toarray() > 0,
        genre_names=genre_names, time_of_day=arrays.get("time_of_day"),
        index=FaissIndex.load(root / "index"), loaded_at=time.time())


def warm_up(model: LoadedModel) -> None:
    """Run every graph once (first ONNX Runtime calls allocate; keep that off requests)."""
    inputs = model.user_inputs(np.array([0])) if len(model.users) else model.fold_in(
        np.array([0]))
    collab = model.collaborative(inputs)
    pref = np.zeros((1, model.dim), np.float32)
    content, lora = model.content_scores(pref, np.zeros((1, model.dim, model.lora_rank),
                                                        np.float32))
    sources = np.stack([collab, content, content], axis=1).astype(np.float32)
    model.rank(sources, np.full((1, 3), 1 / 3, np.float32), lora, np.zeros((1, 1), np.float32),
               np.zeros((1, model.n_items), bool))


class ModelStore:
    """Holds the served :class:`LoadedModel` and swaps versions without failing requests.

    Args:
        models_dir: folder holding ``<name>/<version>/`` bundles.
        name: registered model name.
        resolver: returns the version to serve (e.g. the registry's champion), or None.
        onnx_threads: intra-op threads per ONNX Runtime session.
    """

    def __init__(self, models_dir: str | Path, name: str, *,
                 resolver: Callable[[], str | None] | None = None, onnx_threads: int = 1,
                 on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.name = name
        self.resolver = resolver
        self.onnx_threads = onnx_threads
        self.on_swap = on_swap
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never take it
        self._loading: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0

    @property
    def current(self) -> LoadedModel:
        """The model serving now.

        Raises:
            ApiError: 503 before the first successful load.
        """
        model = self._current
        if model is None:
            raise ApiError(503, "model_unavailable",
                           f"no version of {self.name!r} is loaded yet"
                           + (f": {self.last_error}" if self.last_error else ""))
        return model

    @property
    def ready(self) -> bool:
        """Whether a model is loaded."""
        return self._current is not None

    def bundle_path(self, version: str) -> Path:
        """``models_dir/<name>/<version>``."""
        return self.models_dir / self.name / str(version)

    def load(self, version: str) -> LoadedModel:
        """Load ``version`` synchronously, warm it up and make it current."""
        with self._lock:
            return self._load_locked(str(version))

    def _load_locked(self, version: str) -> LoadedModel:
        self._loading = version
        try:
            start = time.perf_counter()
            model = load_bundle(self.bundle_path(version), onnx_threads=self.onnx_threads)
            warm_up(model)
            previous, self._current = self._current, model  # the atomic swap
            self.swaps += previous is not None
            self.last_error = None
            log.info("serving %s v%s (loaded in %.0f ms)", self.name, version,
                     (time.perf_counter() - start) * 1000)
            if self.on_swap is not None:
                self.on_swap(model, previous)
            return model
        finally:
            self._loading = None

    def resolve(self) -> str | None:
        """The version the resolver wants served (None: no resolver or no champion)."""
        return self.resolver() if self.resolver is not None else None

    def reload(self, version: str | None = None, *, wait: bool = False) -> dict[str, Any]:
        """Load ``version`` (default: the resolver's) in the background and swap to it.

        Returns:
            ``{"status": "loading"|"unchanged"|"busy"|"loaded", "version", "current"}``.

        Raises:
            ApiError: 409 when no version is given and none can be resolved; 404 when the
                version has no exported bundle.
        """
        target = str(version) if version is not None else self.resolve()
        current = self._current.version if self._current is not None else None
        if target is None:
            raise ApiError(409, "no_champion", f"no version to load for {self.name!r}")
        if target == current:
            return {"status": "unchanged", "version": target, "current": current}
        if not (self.bundle_path(target) / "manifest.json").exists():
            raise ApiError(404, "bundle_not_found",
                           f"{self.name} v{target} is not exported under {self.models_dir}")
        if not self._lock.acquire(blocking=wait):
            return {"status": "busy", "version": self._loading, "current": current}
        if wait:
            try:
                self._load_locked(target)
            finally:
                self._lock.release()
            return {"status": "loaded", "version": target, "current": target}
        threading.Thread(target=self._background_load, args=(target,), daemon=True,
                         name=f"sona-load-{target}").start()
        return {"status": "loading", "version": target, "current": current}

    def _background_load(self, version: str) -> None:
        try:
            self._load_locked(version)
        except Exception as exc:  # keep serving the old version; report on /ready
            self.last_error = f"loading v{version} failed: {exc}"
            log.exception("loading %s v%s failed; still serving the previous version",
                          self.name, version)
        finally:
            self._lock.release()

    def poll_once(self) -> dict[str, Any] | None:
        """Reload when the resolver's version differs from the served one."""
        try:
            target = self.resolve()
        except Exception as exc:  # registry unreachable: keep serving, report
            self.last_error = f"resolving the champion failed: {exc}"
            log.warning("%s", self.last_error)
            return None
        current = self._current.version if self._current is not None else None
        if target is None or target == current:
            return None
        if not (self.bundle_path(target) / "manifest.json").exists():
            self.last_error = f"{self.name} v{target} is not exported yet"
            log.warning("%s", self.last_error)
            return None
        return self.reload(target)

    def start_polling(self, interval_s: float) -> None:
        """Poll the resolver every ``interval_s`` seconds on a daemon thread."""
        if interval_s <= 0 or self.resolver is None or self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.poll_once()

        self._poller = threading.Thread(target=loop, daemon=True, name="sona-champion-poll")
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def status(self) -> dict[str, Any]:
        """Served version, load in progress, swaps so far and the last error."""
        model = self._current
        return {"name": self.name, "version": model.version if model else None,
                "loaded_at": model.loaded_at if model else None, "loading": self._loading,
                "swaps": self.swaps, "last_error": self.last_error}


def registry_resolver(tracking: Any, name: str,
                      alias: str = "champion") -> Callable[[], str | None]:
    """A resolver reading ``name@alias`` from the MLflow registry (mlflow imported lazily).

    Args:
        tracking: a :class:`sona.experiments.spec.TrackingConfig`.
    """
    tracker: Any = None

    def resolve() -> str | None:
        nonlocal tracker
        if tracker is None:
            from sona.experiments.tracking import Tracker

            tracker = Tracker(tracking)
        version = tracker.get_alias_version(name, alias)
        return None if version is None else str(version)

    return resolve


__all__ = ["LoadedModel", "ModelStore", "load_bundle", "registry_resolver", "warm_up"]
