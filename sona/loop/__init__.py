"""The closed loop (issue 11 item 4): served viewing retrains the champion that serves it.

:mod:`sona.loop.viewers` drives simulated viewers through a real server's playback API and
measures hit rate on their hidden tastes; :mod:`sona.loop.retrain` trains, promotes and
serves the champions and closes the loop (event log export -> experiment -> promotion ->
hot swap). ``notebooks/06-closed-loop.ipynb`` and ``tests/serving/test_closed_loop.py``
tell the story end to end.
"""

from sona.loop.plots import plot_before_after
from sona.loop.retrain import (
    LOOP_EXPERIMENT,
    LOOP_MODEL,
    PROMOTION_METRIC,
    LoopServers,
    Retrained,
    loop_experiment,
    loop_tracking,
    retrain,
    start_loop,
    train_and_promote,
)
from sona.loop.viewers import (
    LoopConfig,
    ServedLists,
    Viewing,
    WatchLog,
    compare_hits,
    hidden_tastes,
    hit_rates,
    make_viewers,
    wait_for_version,
    watch,
)

__all__ = [
    "LOOP_EXPERIMENT", "LOOP_MODEL", "PROMOTION_METRIC", "LoopConfig", "LoopServers",
    "Retrained", "ServedLists", "Viewing", "WatchLog", "compare_hits", "hidden_tastes",
    "hit_rates", "loop_experiment", "loop_tracking", "make_viewers", "plot_before_after",
    "retrain", "start_loop",
    "train_and_promote", "wait_for_version", "watch",
]
