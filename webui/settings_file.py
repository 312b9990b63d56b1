"""The appliance's settings file, ``$SEQGPT_WORKSPACE/seqgpt560m.env``: ``KEY=VALUE`` lines read at every start.

Supervisor hands the app the environment supervisord itself started with, so a changed
environment variable reaches the app only after supervisord restarts. A file read at every
start is what makes "edit it, then ``supervisorctl restart seqgpt560m``" work, in the image
and on a plain machine alike. Environment variables still win over the file.

    python -m webui.settings_file remember WORKSPACE KEY=VALUE ...   # scripts/start.sh
    python -m webui.settings_file get WORKSPACE KEY                  # the value the app will use
    python -m webui.settings_file check WORKSPACE                    # scripts/status.sh: what is wrong
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from model_loader.errors import SettingsError

FILE_NAME = "seqgpt560m.env"
DEFAULT_WORKSPACE = "/root/workspace"
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_COMMENTED = re.compile(r"#\s*([A-Z][A-Z0-9_]*)=(.*)")

# (name, default, meaning). The defaults are the code's own (a test holds them equal); the file
# lists them commented out, so that it documents itself and changes nothing until edited.
SETTINGS = [
    ("SEQGPT_MODEL_DIR", "/root/models/seqgpt-560m", "folder with config.json, the weights and tokenizer.json"),
    ("SEQGPT_HOST", "0.0.0.0", "address to listen on; 127.0.0.1 keeps it to this machine"),
    ("SEQGPT_PORT", "7860", "HTTP port"),
    ("SEQGPT_DEVICE", "auto", "auto (GPU when there is one), cpu, cuda"),
    ("SEQGPT_DTYPE", "auto", "auto (fp16 on a GPU; on a CPU by its flags), float32, bfloat16, float16"),
    ("SEQGPT_CPU_FLAGS_EXCLUDE", "", "CPU flags to act as if missing, comma-separated (avx512_fp16,amx_bf16)"),
    ("SEQGPT_WEIGHTS", "16bit", "16bit, or int8 on a CPU: about half the memory and time, results change slightly"),
    ("SEQGPT_DECODING", "fast", "fast (greedy, label scoring) or official (beams 4, repetition penalty 2.0)"),
    ("SEQGPT_MAX_TEXT_CHARS", "20000", "longest text accepted"),
    ("SEQGPT_MAX_LABELS", "64", "most labels / fields in one request"),
    ("SEQGPT_MAX_LABEL_CHARS", "64", "longest label / field name"),
    ("SEQGPT_MAX_PROMPT_CHARS", "8000", "longest free prompt"),
    ("SEQGPT_MAX_NEW_TOKENS", "256", "most tokens a free prompt may generate"),
    ("SEQGPT_EXTRACT_MAX_NEW_TOKENS", "128", "most tokens generated for one extraction prompt"),
    ("SEQGPT_WINDOW_TOKENS", "1024", "model window; longer texts are split"),
    ("SEQGPT_OVERLAP_CHARS", "120", "overlap between the pieces of a split text"),
    ("SEQGPT_MAX_BATCH_SIZE", "16", "most requests the engine batches into one model call"),
    ("SEQGPT_BATCH_GATHER_MS", "5", "how long a batch keeps gathering requests"),
    ("SEQGPT_MAX_WAIT_S", "60", "longest estimated wait before a request starts; longer: 503 + Retry-After; 0: off"),
    ("SEQGPT_TORCH_THREADS", "0", "CPU threads for torch; 0 keeps torch's default"),
    ("SEQGPT_AUTH", "", "user:password turns on HTTP basic auth for everything except /health"),
    ("SEQGPT_QUEUE_SIZE", "32", "requests that may wait for a model slot"),
    ("SEQGPT_CONCURRENCY", "8", "requests handed to the engine at once"),
    ("SEQGPT_BATCH_MAX_BYTES", "2097152", "largest batch upload"),
    ("SEQGPT_BATCH_MAX_ROWS", "1000", "most rows in a batch upload"),
    ("SEQGPT_JOBS_DB", "", "the jobs database file; empty: seqgpt560m.db in the workspace"),
    ("SEQGPT_JOBS_MAX_BYTES", "268435456", "largest file a durable job takes"),
    ("SEQGPT_JOBS_MAX_ROWS", "100000", "most rows in one durable job"),
    ("SEQGPT_JOBS_MAX_QUEUED", "20", "jobs that may wait to run; one more is refused"),
    ("SEQGPT_JOBS_RETENTION_DAYS", "7", "days a finished job and its results are kept, then purged"),
    ("SEQGPT_JOBS_BATCH_ROWS", "32", "most rows a job hands the engine at once"),
    ("SEQGPT_JOBS_SLICE_MS", "500", "ms of work a job hands the engine at once; what an interactive request waits"),
    ("SEQGPT_HISTORY", "off", "on keeps every request's text and answer in the workspace database (History tab)"),
    ("SEQGPT_HISTORY_RETENTION_DAYS", "30", "days a stored request and its feedback are kept, then purged"),
    ("SEQGPT_HISTORY_MAX_MB", "512", "most megabytes of stored requests; the oldest are purged past it"),
    ("SEQGPT_HISTORY_MAX_TEXT_CHARS", "20000", "longest text stored whole; a longer one is cut and marked"),
    ("SEQGPT_STATUS_REFRESH_S", "3", "how often the status bar refreshes, in seconds"),
    ("SEQGPT_GRACEFUL_SHUTDOWN_S", "6", "seconds to finish requests after SIGTERM; below Supervisor's stopwaitsecs"),
    ("SEQGPT_LOG_LEVEL", "INFO", "log level"),
    # Scale-out on Ray Serve (serving/); read by the web app, listed here so the file documents them.
    ("SEQGPT_REPLICAS", "0", "this many Ray Serve replicas on this machine (requirements-cluster.txt); 0: none"),
    ("SEQGPT_ENGINE_URL", "", "Ray Serve route of replicas elsewhere, e.g. http://head-node:8000/seqgpt"),
    ("SEQGPT_REPLICA_CPUS", "", "CPUs Ray reserves for each local replica; empty: the cores shared out"),
    ("SEQGPT_REPLICA_GPUS", "0", "GPUs for each local replica; a fraction lets replicas share a card"),
    ("SEQGPT_REPLICA_MAX_ONGOING", "16", "requests one replica takes at once; more wait in Ray Serve's queue"),
    ("SEQGPT_SERVE_PORT", "8000", "Ray Serve's HTTP port for local replicas, on 127.0.0.1"),
    ("SEQGPT_ENGINE_TIMEOUT_S", "600", "longest wait for the replicas' answer to one call, retry included"),
    # The knowledge base (webui/kb) and its embedding model (model_loader/embedding); summaries (tasks/summarize).
    ("SEQGPT_EMBED_MODEL_DIR", "/root/models/gte-large-zh", "GTE-Chinese-Large; demo embedding weights when absent"),
    ("SEQGPT_EMBED_DEMO_DIR", "", "where demo embedding weights are built; empty: models/gte-demo in the workspace"),
    ("SEQGPT_EMBED_DEMO_FALLBACK", "1", "0 makes a missing embedding model an error instead of demo weights"),
    ("SEQGPT_EMBED_DTYPE", "auto",
     "auto (float16 on a GPU; on a CPU the engine's choice: 16-bit where fast, else float32), "
     "float32, bfloat16, float16"),
    ("SEQGPT_EMBED_BATCH_SIZE", "16", "passages per embedding call; a search waits for at most one such batch"),
    ("SEQGPT_EMBED_MAX_TOKENS", "512", "GTE's window; longer passages are cut"),
    ("SEQGPT_KB_PATH", "", "folder of the embedded knowledge-base store; empty: kb/ in the workspace"),
    ("SEQGPT_KB_URL", "", "a Chroma server (http://kb-host:8000) used instead of the embedded store"),
    ("SEQGPT_KB_PASSAGE_CHARS", "300", "longest passage a document is cut into"),
    ("SEQGPT_KB_MAX_UPLOAD_BYTES", "10485760", "largest document upload or JSON body"),
    ("SEQGPT_KB_MAX_DOCUMENTS", "1000", "most documents in one request"),
    ("SEQGPT_KB_MAX_QUERY_CHARS", "1000", "longest search query"),
    ("SEQGPT_KB_MAX_TOP_K", "20", "most hits a search may ask for"),
    ("SEQGPT_SUMMARY_PROMPT", "请为以下内容生成简洁摘要,不超过{max_chars}字:\\n{text}", "summary prompt"),
    ("SEQGPT_SUMMARY_MAX_CHARS", "500", "the longest summary a request may ask for"),
    ("SEQGPT_SUMMARY_MIN_SIMILARITY", "0.45", "GTE cosine of summary and source below this: flagged drifted"),
    ("SEQGPT_SUMMARY_MIN_RATIO", "0.12", "summary chars / source chars below this: flagged too_terse"),
    ("SEQGPT_SUMMARY_MAX_RATIO", "0.35", "summary chars / source chars above this: flagged too_long"),
]

HEADER = """\
# SeqGPT-560M settings. The app reads this file each time it starts, so to change a setting,
# edit its line (remove the leading "# "), then restart the app:
#   supervisorctl restart seqgpt560m            (in the Docker image)
#   scripts/supervisorctl restart seqgpt560m    (on a machine started with scripts/start.sh)
# An environment variable of the same name overrides its line here. SEQGPT_WORKSPACE is not
# read from here: this file lives in the workspace.
"""


def settings_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("SEQGPT_WORKSPACE") or DEFAULT_WORKSPACE) / FILE_NAME


def template() -> str:
    lines = [HEADER]
    for name, default, meaning in SETTINGS:
        lines.append(f"\n# {meaning}\n# {name}={default}\n")
    return "".join(lines)


def ensure_settings_file(path: Path) -> bool:
    """Write the file with every setting commented out at its default, unless it exists. True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, template())
    return True


def _write_private(path: Path, text: str) -> None:
    """Owner-only, whatever the umask: the file may hold SEQGPT_AUTH's password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)  # a file made before this rule, or by hand, is made private too


def read_settings_file(path: Path, skip_malformed: bool = False) -> dict[str, str]:
    """The settings the file sets (comments and blank lines ignored); a malformed line is an error
    that names the line and how to fix it, or, with ``skip_malformed``, is passed over."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _NAME.fullmatch(name):
            if skip_malformed:
                continue
            raise SettingsError(
                f"{path} line {number} is not KEY=VALUE ({line[:60]!r}): write it as SEQGPT_NAME=value, "
                "or start it with # to keep it as a comment"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name] = value
    return values


def load_settings_file(environ: MutableMapping[str, str] | None = None) -> Path:
    """Create the file on first start, then add its settings to the environment where the
    environment does not already set them (so environment variables override the file)."""
    env = os.environ if environ is None else environ
    path = settings_path(env)
    try:
        if not ensure_settings_file(path):
            make_private(path)
        values = read_settings_file(path)
    except OSError as exc:
        raise SettingsError(
            f"cannot read or create the settings file {path} ({exc}): check SEQGPT_WORKSPACE and its permissions"
        ) from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(f"the settings file {path} is not UTF-8 text ({exc}): save it as UTF-8") from exc
    known = {name for name, _, _ in SETTINGS}
    for name, value in values.items():
        if name not in known:
            print(f"seqgpt: {path} sets {name}, which is not one of the settings listed in it; check the spelling",
                  file=sys.stderr)
        env.setdefault(name, value)
    return path


def remember(path: Path, values: Mapping[str, str]) -> None:
    """Set these values in the file, each on its own line if it has one, else on its commented
    default, else at the end; every other line stays as it was."""
    ensure_settings_file(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    for name, value in values.items():
        active = [i for i, line in enumerate(lines) if line.strip().partition("=")[0].strip() == name]
        commented = [i for i, line in enumerate(lines) if (m := _COMMENTED.fullmatch(line.strip())) and m[1] == name]
        if active or commented:
            lines[(active or commented)[-1]] = f"{name}={value}"
        else:
            lines.append(f"{name}={value}")
    _write_private(path, "\n".join(lines) + "\n")


def effective(path: Path, name: str) -> str:
    """What the app started without that variable in its environment will use: the file's line, else the
    default. A malformed line elsewhere does not hide the others (``problem`` reports it, once)."""
    values = read_settings_file(path, skip_malformed=True) if path.exists() else {}
    if name in values:
        return values[name]
    return next((default for known, default, _ in SETTINGS if known == name), "")


def problem(path: Path) -> str | None:
    """Why the app would refuse to start on this file, or None when every line is well formed."""
    try:
        if path.exists():
            read_settings_file(path)
    except (SettingsError, OSError, UnicodeDecodeError) as exc:
        return str(exc)
    return None


def recorded_workspace(checkout: Path) -> Path | None:
    """The workspace scripts/start.sh recorded in this checkout (``.seqgpt-instance``), if any."""
    instance = checkout / ".seqgpt-instance"
    if not instance.is_file():
        return None
    lines = [line for line in instance.read_text(encoding="utf-8").splitlines() if line.startswith("SEQGPT_WORKSPACE=")]
    return Path(lines[-1].partition("=")[2]) if lines else None


def appliance_environ(checkout: Path) -> tuple[dict[str, str], Path | None]:
    """The environment with the settings of this machine's appliance filled in, as the app itself sees
    them (its workspace: the one start.sh recorded, else $SEQGPT_WORKSPACE), for tools run beside it
    such as scripts/evaluate.py. Returns it and the settings file read, or None where there is none."""
    env = dict(os.environ)
    workspace = recorded_workspace(checkout) or env.get("SEQGPT_WORKSPACE")
    if not workspace or not (Path(workspace) / FILE_NAME).is_file():
        return env, None
    path = Path(workspace) / FILE_NAME
    for name, value in read_settings_file(path).items():
        env.setdefault(name, value)
    return env, path


def make_private(path: Path) -> None:
    """A file made before this rule, or by hand, is made owner-only; one the app may not change is
    only warned about (a read-only mount is the operator's choice)."""
    if path.stat().st_mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            print(f"seqgpt: {path} is readable by others and cannot be made private ({exc}); "
                  f"run chmod 600 {path}, as it may hold SEQGPT_AUTH's password", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "remember":
        values = {}
        for item in argv[2:]:
            name, _, value = item.partition("=")
            values[name] = value
        remember(Path(argv[1]) / FILE_NAME, values)
        return 0
    if len(argv) == 3 and argv[0] == "get":
        print(effective(Path(argv[1]) / FILE_NAME, argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "check":
        reason = problem(Path(argv[1]) / FILE_NAME)
        if reason:
            print(reason)
        return 1 if reason else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
