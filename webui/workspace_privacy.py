"""Owner-only workspace files: the settings file holds a password, the log and results hold users' texts."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

# New files and folders: rw------- and rwx------, whatever umask the app was started with.
PRIVATE_UMASK = 0o077


def keep_private(workspace: Path) -> int:
    """Set the umask for what the app creates from now on, and take group and other access away from
    what is already in the workspace (made before this rule, or under another umask). Returns how many
    entries were changed; one the app may not change is logged, never fatal."""
    os.umask(PRIVATE_UMASK)
    changed = 0
    if not workspace.is_dir():
        return changed
    for entry in [workspace, *workspace.rglob("*")]:
        try:
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & 0o077:
                continue
            os.chmod(entry, stat.S_IMODE(mode) & ~0o077)
            changed += 1
        except OSError as exc:
            log.warning("%s stays readable by others (%s): chmod go-rwx it by hand", entry, exc)
    return changed
