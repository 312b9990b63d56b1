"""``python -m webui.jobs.report WORKSPACE``: the running and queued jobs in a line each, for scripts/status.sh."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from webui.settings_file import FILE_NAME as SETTINGS_FILE
from webui.settings_file import effective

from ..store.db import FILE_NAME


def report(workspace: Path) -> list[str]:
    """Read-only: the app may be writing; a missing database means no job was ever submitted."""
    path = Path(effective(workspace / SETTINGS_FILE, "SEQGPT_JOBS_DB") or workspace / FILE_NAME)
    if not path.exists():
        return ["jobs       none (no jobs database yet)"]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT id, state, task, rows_done, rows_total, rows_failed, input_name FROM jobs "
            "WHERE state IN ('running', 'queued') ORDER BY state DESC, created_at"
        ).fetchall()
    except sqlite3.Error as exc:
        return [f"jobs       cannot read {path}: {exc}"]
    finally:
        conn.close()
    if not rows:
        return [f"jobs       none running or queued ({path})"]
    return [
        f"job        {job_id} {state:<8} {task:<8} {done:,}/{total:,} rows, {failed:,} failed  {name}"
        for job_id, state, task, done, total, failed, name in rows
    ]


if __name__ == "__main__":
    print("\n".join(report(Path(sys.argv[1]))))
