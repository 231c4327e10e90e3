"""The served model: an exported pipeline with its graphs in ONNX Runtime, swapped atomically.

:class:`LoadedModel` is immutable once built; a request reads ``store.current`` once and
uses that object to the end, so a swap never mixes two versions inside one request.
:class:`ModelStore` loads a new version on a background thread, warms it up with a real
scoring call, and only then replaces the single ``_current`` reference (an atomic
assignment), so in-flight and new requests never fail during a swap. The champion version
comes from a resolver (the MLflow registry alias, polled) or is pinned. Between versions,
:meth:`ModelStore.update` swaps in the same version with a changed item space (cold catalog
items, :mod:`sona.serving.catalog_items`), and ``prepare`` gives every loaded version the
catalog's current items before it serves.

Across worker processes (issue 12): given the server's :class:`~sona.shared.SharedState`,
every version a store loads on its own (start-up, ``POST /admin/reload``, a registry poll)
is announced on the relay once it serves, with a *generation* drawn from a shared counter;
the other workers' stores load the same version through the same path (bundle, ``prepare``,
warm-up, ``on_swap``) on a background thread. A worker applies an announcement only when
its generation is newer than that of the swap it serves, so two swaps made at once in two
workers end with every worker on the later one. A worker that cannot follow keeps serving
its version and says so in :meth:`ModelStore.status` (``behind``; /ready reports the model
``degraded``); announcing again (a reload of the served version) makes it retry.
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

from sona.data.ids import IdIndex
from sona.errors import DataError
from sona.models.base import Recommender
from sona.pipeline import Pipeline
from sona.serving.errors import ApiError
from sona.serving.export_onnx import read_manifest
from sona.shared import SharedState

log = logging.getLogger(__name__)

Scores = NDArray[np.float32]

#: relay topic of model swaps and shared-version domain of their generations
MODEL_TOPIC = "model"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """One exported version, ready to serve: the pipeline with its graphs in ONNX Runtime.

    Everything a request computes goes through :attr:`pipeline` (the same class ``sona
    run`` scores); the properties below are read-only views of it for the handlers.
    """

    name: str
    version: str
    path: Path
    manifest: dict[str, Any]
    pipeline: Pipeline
    index: Any  # FaissIndex over item vectors (similar items)
    loaded_at: float

    @property
    def users(self) -> IdIndex:
        """Users the pipeline was trained on."""
        return self.pipeline.users_

    @property
    def items(self) -> IdIndex:
        """Servable items."""
        return self.pipeline.items_

    @property
    def seen(self) -> sp.csr_matrix:
        """``(n_users, n_items)`` training interactions."""
        return self.pipeline.seen_

    @property
    def n_items(self) -> int:
        """Number of servable items."""
        return len(self.pipeline.items_)

    @property
    def item_vectors(self) -> NDArray[np.float32]:
        """``(n_items, D)`` content vectors."""
        return self.pipeline.features_.vectors

    @property
    def index_vectors(self) -> NDArray[np.float32]:
        """Vectors of the similar-items index: collaborative item factors, else content."""
        if self.manifest.get("index_vectors") == "item_factors":
            arrays = self.pipeline.model_sources()[0].export.arrays
            return np.asarray(arrays["item_factors"], np.float32)
        return self.pipeline.features_.vectors

    @property
    def dim(self) -> int:
        """Content / preference vector dimension D."""
        return self.pipeline.features_.dim

    @property
    def lora_rank(self) -> int:
        """LoRA rank r."""
        return self.pipeline.features_.lora_rank

    @property
    def lora_base(self) -> NDArray[np.float32]:
        """Shared LoRA ``A`` ``(r, D)``."""
        return self.pipeline.features_.lora_base

    @property
    def popularity(self) -> NDArray[np.float32]:
        """Distinct training users per item."""
        return self.pipeline.features_.popularity

    def item_genres(self, item_idx: int) -> list[str]:
        """Canonical genre names of one item."""
        return self.pipeline.features_.item_genres(item_idx)


def load_bundle(path: str | Path, *, onnx_threads: int = 1) -> LoadedModel:
    """Load an exported bundle folder into a :class:`LoadedModel`.

    Raises:
        DataError: not a bundle, or a file is missing.
    """
    from sona.search.faiss_index import FaissIndex

    root = Path(path)
    manifest = read_manifest(root)
    if "graphs" not in manifest or not (root / "pipeline").exists():
        raise DataError("bundle was exported by an older SONA (no pipeline/ and graphs); "
                        "export it again with `sona export`", path=root)
    pipeline: Recommender[Any] = Recommender.load(root / "pipeline")
    if not isinstance(pipeline, Pipeline):
        raise DataError(f"bundle holds a {type(pipeline).__name__}, not a Pipeline", path=root)
    missing = sorted(set(manifest["graphs"]) - set(pipeline.graphs_))
    if missing:
        raise DataError(f"bundle's pipeline lacks graph(s) {missing}", path=root)
    pipeline.set_onnx_threads(onnx_threads)
    return LoadedModel(name=str(manifest["name"]), version=str(manifest["version"]), path=root,
                       manifest=manifest, pipeline=pipeline,
                       index=FaissIndex.load(root / "index"), loaded_at=time.time())


def warm_up(model: LoadedModel) -> None:
    """Rank once for a known and an unknown user (first ONNX Runtime calls allocate)."""
    pipeline = model.pipeline
    states = pipeline.states(model.users.ids_array[:1]) if len(model.users) else []
    states.append(pipeline.state("__warm_up__"))
    pipeline.rank(states, 10)


class ModelStore:
    """Holds the served :class:`LoadedModel` and swaps versions without failing requests.

    Args:
        models_dir: folder holding ``<name>/<version>/`` bundles.
        name: registered model name.
        resolver: returns the version to serve (e.g. the registry's champion), or None.
        onnx_threads: intra-op threads per ONNX Runtime session.
        on_swap: called with ``(new, previous)`` after each swap to a loaded version, in
            every worker (:attr:`following` is True when the swap follows another worker's).
        prepare: applied to every loaded version before it serves.
        shared: the server's shared state: swaps are announced to, and followed from, the
            other workers' stores of the same ``name`` (module docstring). None: this
            process only.
    """

    def __init__(self, models_dir: str | Path, name: str, *,
                 resolver: Callable[[], str | None] | None = None, onnx_threads: int = 1,
                 on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None = None,
                 prepare: Callable[[LoadedModel], LoadedModel] | None = None,
                 shared: SharedState | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.name = name
        self.resolver = resolver
        self.onnx_threads = onnx_threads
        self.on_swap = on_swap
        # applied to every loaded version before it serves (the catalog's cold items)
        self.prepare = prepare
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never take it
        self._loading: str | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self.shared = shared
        # generation of the announced swap now served (0: none yet); under _lock
        self._generation = 0
        # True while a swap announced by another worker is applied (read by on_swap)
        self.following = False
        # the version another worker serves that this one failed to load, else None
        self.behind: str | None = None
        # newest announcement not applied yet (version, generation) and its thread
        self._pending: tuple[str, int] | None = None
        self._pending_lock = threading.Lock()
        self._follower: threading.Thread | None = None
        if shared is not None:
            shared.subscribe(MODEL_TOPIC, self._on_announced)

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

    def _load_locked(self, version: str, *, generation: int | None = None) -> LoadedModel:
        """Load, swap and (``generation`` None: a swap of this worker's own) announce it;
        a ``generation`` is that of the other worker's announcement being followed."""
        self._loading = version
        try:
            start = time.perf_counter()
            model = load_bundle(self.bundle_path(version), onnx_threads=self.onnx_threads)
            if self.prepare is not None:
                model = self.prepare(model)
            warm_up(model)
            previous, self._current = self._current, model  # the atomic swap
            self.swaps += previous is not None
            self.last_error = None
            self.behind = None
            log.info("serving %s v%s (loaded in %.0f ms%s)", self.name, version,
                     (time.perf_counter() - start) * 1000,
                     "" if generation is None else ", following another worker")
            if generation is None:
                self._announce(version)
            else:
                self._generation = generation
            if self.on_swap is not None:
                self.on_swap(model, previous)
            return model
        finally:
            self._loading = None

    # --- across workers ----------------------------------------------------------------

    def _announce(self, version: str) -> None:
        """Tell the other workers to serve ``version`` (under the load lock, once it
        serves here); never raises: the swap is done, a relay failure is logged."""
        if self.shared is None:
            return
        try:
            self._generation = self.shared.bump(MODEL_TOPIC, self.name)
            self.shared.publish(MODEL_TOPIC, {"name": self.name, "version": version,
                                              "generation": self._generation})
        except Exception:  # noqa: BLE001 - e.g. a locked relay file; polling still converges
            log.exception("could not announce %s v%s to the other workers", self.name, version)

    def _on_announced(self, payload: dict[str, Any]) -> None:
        """Relay handler (tailer thread): queue the newest announced swap for the follower
        thread, so a load of seconds never holds up the other relay topics."""
        if payload.get("name") != self.name:
            return
        announced = (str(payload["version"]), int(payload["generation"]))
        with self._pending_lock:
            if self._pending is None or announced[1] > self._pending[1]:
                self._pending = announced
            if self._follower is not None:
                return  # the running follower takes it
            self._follower = threading.Thread(target=self._follow, daemon=True,
                                              name="sona-follow-swap")
            self._follower.start()

    def _follow(self) -> None:
        while True:
            with self._pending_lock:
                announced, self._pending = self._pending, None
                if announced is None or self._stop.is_set():
                    self._follower = None
                    return
            self.follow(*announced)

    def follow(self, version: str, generation: int) -> None:
        """Serve ``version`` as another worker announced with ``generation`` (blocking).

        Ignored when this worker already serves a newer swap; a load failure is logged and
        kept in :attr:`behind` and ``last_error`` (the previous version keeps serving).
        """
        with self._lock:
            if generation <= self._generation:
                return
            current = self._current
            if current is not None and current.version == version:
                self._generation = generation
                self.behind = None
                return
            self.following = True
            try:
                self._load_locked(version, generation=generation)
            except Exception as exc:  # keep serving what we have; report on /ready
                self.behind = version
                self.last_error = f"following v{version} from another worker failed: {exc}"
                log.exception("could not follow %s v%s loaded by another worker; still "
                              "serving the previous version", self.name, version)
            finally:
                self.following = False

    def update(self, change: Callable[[LoadedModel], LoadedModel]) -> LoadedModel | None:
        """Swap in ``change(current)`` (same version, e.g. with new cold items) atomically.

        Runs under the load lock, so a version loading meanwhile is changed after it is
        current, never lost; ``change`` must not modify its argument (requests use it).

        Returns:
            the model now served, or None when none is loaded yet (the next load's
            ``prepare`` sees the change).
        """
        with self._lock:
            current = self._current
            if current is None:
                return None
            changed = change(current)
            if changed is not current:
                self._current = changed  # the atomic swap
            return changed

    def resolve(self) -> str | None:
        """The version the resolver wants served (None: no resolver or no champion)."""
        return self.resolver() if self.resolver is not None else None

    def reload(self, version: str | None = None, *, wait: bool = False) -> dict[str, Any]:
        """Load ``version`` (default: the resolver's) in the background and swap to it.

        The answer is this worker's; once the version serves here, the other workers follow
        (module docstring). Asking for the version already served announces it again.

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
            # announce it again: a worker that failed to follow it retries
            if self._lock.acquire(blocking=False):
                try:
                    if self._current is not None and self._current.version == target:
                        self._announce(target)
                finally:
                    self._lock.release()
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
        """Served version, load in progress, swaps so far, the last error and ``behind``
        (the version another worker serves that this one failed to load, else None)."""
        model = self._current
        return {"name": self.name, "version": model.version if model else None,
                "loaded_at": model.loaded_at if model else None, "loading": self._loading,
                "swaps": self.swaps, "last_error": self.last_error, "behind": self.behind}


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


__all__ = ["MODEL_TOPIC", "LoadedModel", "ModelStore", "load_bundle", "registry_resolver",
           "warm_up"]
