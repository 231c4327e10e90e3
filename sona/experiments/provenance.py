"""Provenance of a run: which code produced it (the git commit of SONA's checkout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: the checkout SONA's code runs from (an editable install); its HEAD identifies the code
_SOURCE_DIR = Path(__file__).resolve().parent


def git_sha(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of ``cwd`` (default: SONA's own source folder), or "unknown".

    The default is the code's checkout, not the working directory, so the tag names the
    code that produced a run wherever ``sona run`` is started from; "unknown" when SONA is
    not installed from a git checkout or git is missing.
    """
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or _SOURCE_DIR,
                              capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and sha else "unknown"
