"""Erase stored requests (and their feedback) from the request history, by date; the app may keep running.

    python scripts/erase_history.py --before 2026-01-31            # everything stored before that day (UTC)
    python scripts/erase_history.py --before 2026-01-31T12:00:00Z
    python scripts/erase_history.py --all                          # every stored request

The database is the appliance's, as the app finds it: seqgpt560m.db in the workspace scripts/start.sh
recorded for this checkout, else in $SEQGPT_WORKSPACE (default /root/workspace, the image's), unless
SEQGPT_JOBS_DB (in the environment or that workspace's settings file) or --db names another file.
Erased texts are overwritten in the file (SQLite secure_delete) and the write-ahead log is emptied;
when another program holds the database open for reading, the log cannot be emptied, and the script
says so and exits 1. The same is DELETE /api/requests?before=… on a running appliance.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model_loader.errors import InvalidInputError  # noqa: E402
from webui.history.room import iso, parse_time, wal_kept  # noqa: E402
from webui.history.store import HistoryStore  # noqa: E402
from webui.settings_file import DEFAULT_WORKSPACE, appliance_environ, recorded_workspace  # noqa: E402
from webui.store.db import DatabaseError, default_path  # noqa: E402


def database() -> Path:
    """The database the appliance of this checkout (or of $SEQGPT_WORKSPACE) writes its history to."""
    env, _ = appliance_environ(ROOT)
    if env.get("SEQGPT_JOBS_DB"):
        return Path(env["SEQGPT_JOBS_DB"])
    return default_path(Path(recorded_workspace(ROOT) or env.get("SEQGPT_WORKSPACE") or DEFAULT_WORKSPACE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--before", help="a date (2026-01-31, UTC), an ISO time, or epoch seconds")
    when.add_argument("--all", action="store_true", help="erase every stored request")
    parser.add_argument("--db", type=Path,
                        help="the database file (default: the appliance's, in the workspace start.sh recorded)")
    args = parser.parse_args(argv)
    path = args.db or database()
    if not path.is_file():
        print(f"错误 Error: no database at {path}: pass --db, or set SEQGPT_WORKSPACE to the appliance's workspace",
              file=sys.stderr)
        return 2
    try:
        cutoff = time.time() + 1 if args.all else parse_time("--before", args.before)
        store = HistoryStore(path)
        erased = store.delete_before(cutoff)
        emptied = store.checkpoint()
    except (InvalidInputError, DatabaseError) as exc:
        print(f"错误 Error: {exc}", file=sys.stderr)
        return 2
    if not emptied:
        print(f"错误 Error: {wal_kept(erased)} ({path})", file=sys.stderr)
        return 1
    print(f"已删除 erased {erased} stored requests from before {iso(cutoff)} in {path}; "
          f"{store.counts()['requests']} remain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
