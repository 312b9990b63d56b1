"""The appliance's settings file, ``$SEQGPT_WORKSPACE/seqgpt560m.env``: ``KEY=VALUE`` lines read at every start.

Supervisor hands the app the environment supervisord itself started with, so a changed
environment variable reaches the app only after supervisord restarts. A file read at every
start is what makes "edit it, then ``supervisorctl restart seqgpt560m``" work, in the image
and on a plain machine alike. Environment variables still win over the file.

    python -m model_loader.settings_file remember WORKSPACE KEY=VALUE ...   # scripts/start.sh
    python -m model_loader.settings_file get WORKSPACE KEY                  # the value the app will use
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from .errors import SettingsError

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
    ("SEQGPT_DECODING", "fast", "fast (greedy, label scoring) or official (beams 4, repetition penalty 2.0)"),
    ("SEQGPT_MAX_TEXT_CHARS", "20000", "longest text accepted"),
    ("SEQGPT_MAX_LABELS", "64", "most labels / fields in one request"),
    ("SEQGPT_MAX_LABEL_CHARS", "64", "longest label / field name"),
    ("SEQGPT_MAX_PROMPT_CHARS", "8000", "longest free prompt"),
    ("SEQGPT_MAX_NEW_TOKENS", "256", "most tokens a free prompt may generate"),
    ("SEQGPT_EXTRACT_MAX_NEW_TOKENS", "128", "most tokens generated for one extraction prompt"),
    ("SEQGPT_EXTRACT_EXACT_TOKENS", "0", "benchmarks only: every field generates exactly this many tokens"),
    ("SEQGPT_GENERATE_IGNORE_EOS", "0", "benchmarks only: 1 makes free prompts ignore end-of-sequence"),
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
    path.write_text(template(), encoding="utf-8")
    return True


def read_settings_file(path: Path) -> dict[str, str]:
    """The settings the file sets (comments and blank lines ignored); a malformed line is an error
    that names the line and how to fix it."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not _NAME.fullmatch(name):
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
        ensure_settings_file(path)
        values = read_settings_file(path)
    except OSError as exc:
        raise SettingsError(
            f"cannot read or create the settings file {path} ({exc}): check SEQGPT_WORKSPACE and its permissions"
        ) from exc
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
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def effective(path: Path, name: str) -> str:
    """What the app started without that variable in its environment will use: the file's line, else the default."""
    values = read_settings_file(path) if path.exists() else {}
    if name in values:
        return values[name]
    return next((default for known, default, _ in SETTINGS if known == name), "")


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
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
