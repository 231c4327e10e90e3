"""An orphaned worker stops itself (sona.serving.process.exit_with_parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

CHILD = ("import time; from sona.serving.process import exit_with_parent; "
         "exit_with_parent(0.05); time.sleep(120)")
PARENT = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', {CHILD!r}]);"
          " print(c.pid, flush=True); time.sleep(120)")


def test_a_worker_whose_parent_is_killed_stops() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    time.sleep(1.0)  # the child has imported sona and started watching
    assert child.is_running()
    os.kill(parent.pid, signal.SIGKILL)  # the arbiter dies without stopping its workers
    parent.wait(10)
    _, alive = psutil.wait_procs([child], timeout=30)
    assert not alive, "the orphaned child kept running"
