"""Viewers of the closed loop (issue 11 item 4): watching through a real server, hit rates.

Simulated viewers watch through a real server's playback API; the event log is exported
as interactions next to ML-100K; the champion's model is retrained on them by the
experiment runner and promoted; the server hot-swaps to it; the viewers are served again.
``tests/serving/test_closed_loop.py`` and ``notebooks/06-closed-loop.ipynb`` share this.

* **Viewers** are the A/B simulator's synthetic users (:class:`sona.ab.users.SyntheticUsers`:
  copies of ML-100K users with a genre affinity and the titles their original rated >= 4),
  renamed to new numeric ids (so the exported file keeps ML-100K's integer ids). Their
  *hidden taste* is that liked list: the server never sees it, only what they watch.
* **Watching** (:func:`watch`): each viewer first plays ``onboard`` of its liked titles to
  the end (more than the pipeline's cold-start threshold of 5, so it gets personal lists);
  then, ``rounds`` times, asks ``/api/v1/recommendations`` and plays each shown title it
  clicks (the simulator's click model: position bias x activity x genre relevance) through
  start -> heartbeat -> stop. It finishes the title with probability ``rel(u, i)`` (the
  simulator's relevance), else stops somewhere in the first 60%: a
  ``playback_complete`` or ``playback_abandon`` viewing event either way.
* **Hit rate** (:func:`hit_rates`): hit rate@k of a fresh served list (watched titles
  excluded, as the API does) against the viewer's liked titles not yet watched.

What a "before" list already includes: the live profile. Every stop updates the viewer's
profile at once, and the served pipeline folds the stored events in (ALS's user step over
the watched titles, the content preference vector), so the old champion already personalises
from the viewers' events before any retraining. After retraining the same fold-in runs on
the new model; what retraining adds is what the model itself learned from the events, which
:func:`hit_rates` measures on a *replica* without profiles (a second server on the same
registry and bundles, with empty databases): there, the old champion does not know the
viewers at all and the retrained one knows them from its training data alone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sona.ab.simulate import Client
from sona.ab.users import SyntheticUsers
from sona.data.sources import MovieLens
from sona.errors import SonaError
from sona.experiments.stats import PairedComparison, compare
from sona.metrics import hit_rate_at_k
from sona.types import PAD_STR

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How many viewers watch how much (see the module docstring)."""

    # synthetic viewers (copies of random ML-100K users)
    viewers: int = 150
    # id of the first viewer (numeric, above ML-100K's 943 users)
    first_id: int = 100_001
    # liked titles each viewer plays to the end first (> cold_start_max_events = 5)
    onboard: int = 8
    # recommendation requests per viewer, each followed by the titles it clicks
    rounds: int = 3
    # list length of every request, and the k of hit rate@k
    limit: int = 10
    # length of every title (seconds)
    duration_s: float = 6000.0
    # click probability scale of the user model (sona.ab.users)
    base_click: float = 0.3
    # concurrent client threads
    concurrency: int = 4
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Viewing:
    """One stopped playback session, as the server acknowledged it."""

    user_id: str
    content_id: str
    completion_rate: float
    event_id: str  # the logged playback_complete / playback_abandon
    event_type: str
    start_event_id: str  # the logged playback_start


@dataclass
class WatchLog:
    """Everything the viewers watched, in order, and the requests it took."""

    viewings: list[Viewing] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0

    def watched(self, user_id: str) -> set[str]:
        """Titles ``user_id`` started (finished or not)."""
        return {v.content_id for v in self.viewings if v.user_id == user_id}

    def event_ids(self) -> set[str]:
        """Every event id the server acknowledged (starts and stops)."""
        return {e for v in self.viewings for e in (v.event_id, v.start_event_id)}


def make_viewers(ml: MovieLens, config: LoopConfig) -> SyntheticUsers:
    """``config.viewers`` synthetic users with new numeric ids from ``config.first_id``."""
    users = SyntheticUsers.from_movielens(ml, config.viewers, seed=config.seed,
                                          base=config.base_click)
    ids = [str(config.first_id + i) for i in range(len(users))]
    return dataclasses.replace(users, user_ids=ids)


def _play(client: Client, user_id: str, item: str, completion: float,
          duration_s: float) -> Viewing:
    """Start, one heartbeat halfway to the stop position, stop: one logged viewing event."""
    started = client.ok("POST", "/api/v1/playback/sessions", {
        "user_id": user_id, "content_id": item, "device_id": "loop-sim",
        "duration_seconds": duration_s})
    session = started["session_id"]
    position = round(completion * duration_s, 1)
    client.ok("POST", f"/api/v1/playback/sessions/{session}/heartbeat",
              {"position_seconds": position / 2})
    stopped = client.ok("POST", f"/api/v1/playback/sessions/{session}/stop",
                        {"position_seconds": position})
    return Viewing(user_id, item, float(stopped["completion_rate"]), stopped["event_id"],
                   stopped["event_type"], f"playback:{session}:start")


def watch(client: Client, viewers: SyntheticUsers, config: LoopConfig) -> WatchLog:
    """Onboarding, then ``config.rounds`` browse-and-watch rounds per viewer (module doc).

    Each viewer draws from its own generator (``[seed, viewer]``), so a run is repeatable
    whatever the thread interleaving; viewers run concurrently, each one in order.

    Raises:
        SonaError: the server refused a request (the message names it).
    """
    start = time.perf_counter()
    before = client.requests

    def one(u: int) -> list[Viewing]:
        rng = np.random.default_rng([config.seed, u])
        uid = viewers.user_ids[u]
        out = [_play(client, uid, str(item), 1.0, config.duration_s)
               for item in viewers.liked[u][:config.onboard]]
        for _ in range(config.rounds):
            resp = client.ok("POST", "/api/v1/recommendations",
                             {"user_id": uid, "limit": config.limit})
            items = [str(r["content_id"]) for r in resp["recommendations"]]
            clicked = np.flatnonzero(rng.random(len(items)) <
                                     viewers.click_probabilities(u, items))
            finished = rng.random(len(clicked)) < viewers.relevance(
                u, [items[p] for p in clicked])
            stops = rng.uniform(0.05, 0.6, len(clicked))
            out += [_play(client, uid, items[p], 1.0 if done else float(stop),
                          config.duration_s)
                    for p, done, stop in zip(clicked, finished, stops, strict=True)]
        return out

    with ThreadPoolExecutor(config.concurrency) as pool:
        per_viewer = list(pool.map(one, range(len(viewers))))
    result = WatchLog([v for vs in per_viewer for v in vs], client.requests - before,
                      time.perf_counter() - start)
    log.info("%d viewers watched %d titles in %d requests (%.1f s)", len(viewers),
             len(result.viewings), result.requests, result.seconds)
    return result


def hidden_tastes(viewers: SyntheticUsers, watched: WatchLog) -> list[list[str]]:
    """Per viewer: its liked titles it has not watched yet (the relevant set of hit rate)."""
    return [[str(i) for i in liked if str(i) not in seen]
            for liked, seen in ((viewers.liked[u], watched.watched(uid))
                                for u, uid in enumerate(viewers.user_ids))]


@dataclass(frozen=True)
class ServedLists:
    """One batch of served lists and their hit rates."""

    lists: list[list[str]]
    hits: NDArray[np.float64]  # (n_viewers,) 1/0, NaN where nothing liked is left
    model_versions: set[str]  # the versions that served them
    strategies: dict[str, int]  # personalized / cold-start strategy counts

    @property
    def hit_rate(self) -> float:
        """Mean over viewers with a defined value."""
        return float(np.nanmean(self.hits))


def hit_rates(client: Client, viewers: SyntheticUsers, relevant: Sequence[Sequence[str]],
              *, k: int = 10) -> ServedLists:
    """Hit rate@k of fresh served lists (``/api/v1/recommendations/batch``, watched excluded).

    Raises:
        SonaError: the server refused the request.
    """
    results: list[dict[str, Any]] = []
    for i in range(0, len(viewers), 1000):  # the batch route's cap
        results += client.ok("POST", "/api/v1/recommendations/batch", {
            "user_ids": viewers.user_ids[i:i + 1000], "limit": k})["results"]
    lists = [[str(r["content_id"]) for r in res["recommendations"]] for res in results]
    padded = np.array([row + [PAD_STR] * (k - len(row)) for row in lists], dtype=object)
    hits = hit_rate_at_k(padded, [list(r) for r in relevant], k)
    strategies: dict[str, int] = {}
    for res in results:
        strategies[res["strategy"]] = strategies.get(res["strategy"], 0) + 1
    return ServedLists(lists, hits, {str(r["model_version"]) for r in results}, strategies)


def compare_hits(after: ServedLists, before: ServedLists, *, seed: int = 0
                 ) -> PairedComparison:
    """Paired bootstrap CI (and Wilcoxon) of ``after - before`` over the same viewers.

    Viewers with nothing liked left to find (NaN) are dropped from both sides.
    """
    return compare(after.hits, before.hits, name_a="after", name_b="before",
                   metric="hit_rate", seed=seed)


def wait_for_version(client: Client, user_id: str, version: str, *,
                     timeout_s: float = 120.0) -> None:
    """Ask for ``user_id``'s list until ``version`` answers (a hot swap is asynchronous).

    Raises:
        SonaError: another version still answers after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = str(client.ok("POST", "/api/v1/recommendations",
                             {"user_id": user_id, "limit": 1})["model_version"])
        if seen == version:
            return
        time.sleep(0.2)
    raise SonaError(f"the server still serves v{seen}, not v{version}, after {timeout_s} s")


__all__ = ["LoopConfig", "ServedLists", "Viewing", "WatchLog", "compare_hits", "hidden_tastes",
           "hit_rates", "make_viewers", "wait_for_version", "watch"]
