"""Fetch SeqGPT-560M into the model directory, check the files, and keep the weights as safetensors.

    python scripts/download_model.py                       # Hugging Face, into $SEQGPT_MODEL_DIR
    python scripts/download_model.py --source modelscope   # needs `pip install modelscope`
    python scripts/download_model.py --source none         # a copied-in folder: convert and check it
    python scripts/download_model.py --check               # only check, change nothing
    python scripts/download_model.py --model gte           # GTE-Chinese-Large, into $SEQGPT_EMBED_MODEL_DIR

Where the appliance runs on demo weights, a model installed here also replaces them in the
workspace's settings file, so that the one next step is a restart of the app.

Exit status: 0 when the directory holds a usable model, 1 when a check fails,
2 when the hub cannot be reached (it gives up within seconds, not minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# model_loader/model/demo.py's marker file of demo weights; spelled out because the image runs this
# script before model_loader is copied in.
DEMO_MARKER = "DEMO_WEIGHTS.md"
HF_REPO = "DAMO-NLP/SeqGPT-560M"
MODELSCOPE_REPO = "damo/nlp_seqgpt-560m"
DEFAULT_MODEL_DIR = "/root/models/seqgpt-560m"
ARCHITECTURE = "BloomForCausalLM"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
TOKENIZER = "tokenizer.json"
# Small files worth fetching whatever the repository holds; the weights are chosen apart.
SMALL_FILES = ["*.json", "*.txt", "*.md", "*.model"]

GTE_REPO = "thenlper/gte-large-zh"  # the knowledge base's embedding model (ModelScope: thenlper/gte-large-zh)
DEFAULT_GTE_DIR = "/root/models/gte-large-zh"
GTE_FILES = ["*.json", "*.txt", "model.safetensors", "1_Pooling/*"]

EXIT_BAD_MODEL = 1
EXIT_UNREACHABLE = 2


class DownloadError(Exception):
    """The model could not be fetched; the message says why and what to do instead."""


def check_model_dir(model_dir: Path) -> list[str]:
    """Return what is wrong with ``model_dir`` as a SeqGPT-560M directory (empty when it is usable)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return [f"{model_dir} does not exist"]
    problems = []
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        problems.append(f"{config_path} is missing")
    else:
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{config_path} is not readable JSON ({exc})")
        else:
            architectures = config.get("architectures") or []
            if ARCHITECTURE not in architectures:
                problems.append(f"{config_path} names {architectures or 'no architecture'}, not {ARCHITECTURE}")
    if not any((model_dir / name).is_file() for name in (SAFETENSORS, SAFETENSORS_INDEX, PICKLE)):
        problems.append(f"no weights in {model_dir} (expected {SAFETENSORS} or {PICKLE})")
    if not (model_dir / TOKENIZER).is_file():
        problems.append(f"{model_dir / TOKENIZER} is missing")
    return problems


def describe_model_dir(model_dir: Path) -> str:
    """What a usable model folder holds, in one line: the folder, its weights, and whether they are demo weights."""
    weights = next(name for name in (SAFETENSORS, SAFETENSORS_INDEX, PICKLE) if (model_dir / name).is_file())
    size_mb = sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin")) / 1e6
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    kind = "DEMO weights (random, meaningless output)" if (model_dir / "DEMO_WEIGHTS.md").exists() else "SeqGPT-560M"
    return (
        f"{kind} in {model_dir}: {ARCHITECTURE}, {config.get('n_layer', '?')} layers, hidden size "
        f"{config.get('hidden_size', '?')}, vocabulary {config.get('vocab_size', '?')}; {weights} ({size_mb:.0f} MB), "
        f"{TOKENIZER}"
    )


def _view(tensor) -> tuple:
    """Identify the memory a tensor reads: two names with the same view are one tensor."""
    return (
        tensor.untyped_storage().data_ptr(),
        tensor.storage_offset(),
        tuple(tensor.shape),
        tensor.stride(),
    )


def _tensors_for_safetensors(state: dict, tie_word_embeddings: bool) -> dict:
    """Make a state dict storable as safetensors, which refuses tensors that share memory.

    BLOOM ties the output projection to the input embeddings, so a pickle checkpoint holds
    ``lm_head.weight`` as a second name for the embedding matrix. That name is dropped
    (transformers ties it again on load); any other shared tensor is stored as its own copy.
    """
    import torch

    tensors = {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}
    other_views = {_view(t) for name, t in tensors.items() if name != "lm_head.weight"}
    out = {}
    seen_storage: set[int] = set()
    for name, tensor in tensors.items():
        if name == "lm_head.weight" and tie_word_embeddings and _view(tensor) in other_views:
            continue
        ptr = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone().contiguous() if ptr in seen_storage else tensor.contiguous()
        seen_storage.add(ptr)
    return out


def convert_pickle_to_safetensors(model_dir: Path) -> Path | None:
    """Rewrite ``pytorch_model.bin`` as ``model.safetensors`` and remove the pickle.

    Runs once: with safetensors present, no pickle, or an incomplete directory (see
    ``check_model_dir``) nothing happens and None is returned.
    The pickle is read with ``weights_only=True``, so it cannot run code, and it is only
    removed after the new file has been read back and compared tensor by tensor.
    """
    import torch
    from safetensors.torch import load_file, save_file

    model_dir = Path(model_dir)
    pickle_path, target = model_dir / PICKLE, model_dir / SAFETENSORS
    if check_model_dir(model_dir) or not pickle_path.is_file() or target.is_file():
        return None
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    state = torch.load(pickle_path, map_location="cpu", weights_only=True)
    tensors = _tensors_for_safetensors(state, config.get("tie_word_embeddings", True))
    partial = model_dir / (SAFETENSORS + ".partial")
    save_file(tensors, str(partial), metadata={"format": "pt"})
    written = load_file(str(partial))
    if written.keys() != tensors.keys() or not all(torch.equal(written[k], v) for k, v in tensors.items()):
        partial.unlink()
        raise DownloadError(f"converting {pickle_path} gave different tensors; the pickle was kept")
    os.replace(partial, target)
    pickle_path.unlink()
    return target


def unreachable_reason(url: str, timeout: float) -> str | None:
    """Return why ``url`` cannot be reached within ``timeout`` seconds, or None when it answers.

    Any HTTP answer counts as reachable. Name resolution is not covered by socket timeouts,
    so the whole attempt runs in a thread that is abandoned when time is up.
    """
    result: list[str | None] = []

    def attempt() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            result.append(None)
        except urllib.error.HTTPError:
            result.append(None)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.append(str(reason) or type(exc).__name__)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        return f"no answer within {timeout:g} s"
    return result[0]


def _python() -> str:
    """This interpreter as typed from the repository folder: .venv/bin/python there, else python."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return "python"


def _offline_message(source: str, url: str, reason: str, dest: Path) -> str:
    return (
        f"cannot reach {source} at {url}: {reason}.\n"
        f"This machine looks offline (or a proxy/firewall blocks it). Ways out:\n"
        f"  - copy a SeqGPT-560M folder (config.json, weights, tokenizer.json) to {dest},\n"
        f"    or point SEQGPT_MODEL_DIR at one;\n"
        f"  - for a mirror, set HF_ENDPOINT (Hugging Face) or use --source modelscope;\n"
        f"  - to try the appliance without the model: {_python()} scripts/make_demo_model.py models/demo\n"
        f"    and SEQGPT_MODEL_DIR=models/demo (random weights, meaningless output)."
    )


def download_from_hf(dest: Path, revision: str | None, timeout: float) -> None:
    """Fetch the Hugging Face repository into ``dest``, taking only one copy of the weights."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise DownloadError("HF_HUB_OFFLINE is set, so nothing can be downloaded: unset it and run again")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.constants import ENDPOINT

    reason = unreachable_reason(ENDPOINT, timeout)
    if reason is not None:
        raise DownloadError(_offline_message("Hugging Face", ENDPOINT, reason, dest))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        files = HfApi().list_repo_files(HF_REPO, revision=revision)
        weights = [f for f in files if f.startswith("model") and f.endswith((".safetensors", ".index.json"))]
        patterns = SMALL_FILES + (weights or [PICKLE])
        print(f"downloading {HF_REPO} ({revision or 'main'}) into {dest} ...", flush=True)
        snapshot_download(HF_REPO, revision=revision, local_dir=dest, allow_patterns=patterns, etag_timeout=timeout * 2)
    except Exception as exc:  # the hub client raises many types; all mean the same to the caller
        raise DownloadError(f"downloading {HF_REPO} failed: {exc}; run again to resume") from exc


def download_from_modelscope(dest: Path, revision: str | None, timeout: float) -> None:
    """Fetch the ModelScope repository into ``dest`` (for networks where it is the nearer hub)."""
    try:
        from modelscope import snapshot_download
    except ImportError:
        raise DownloadError("--source modelscope needs the modelscope package: pip install modelscope") from None
    url = "https://" + os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    reason = unreachable_reason(url, timeout)
    if reason is not None:
        raise DownloadError(_offline_message("ModelScope", url, reason, dest))
    dest.mkdir(parents=True, exist_ok=True)
    print(f"downloading {MODELSCOPE_REPO} ({revision or 'master'}) into {dest} ...", flush=True)
    kwargs = {"revision": revision} if revision else {}
    try:
        snapshot_download(MODELSCOPE_REPO, local_dir=str(dest), **kwargs)
    except Exception as exc:  # as above: any failure of the hub client is a failed download
        raise DownloadError(f"downloading {MODELSCOPE_REPO} failed: {exc}; run again to resume") from exc


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source",
        choices=("hf", "modelscope", "none"),
        default="hf",
        help="hub to fetch from; none: use the files already in --dest",
    )
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default: the hub's main)")
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(os.environ.get("SEQGPT_MODEL_DIR") or DEFAULT_MODEL_DIR),
        help="model directory (default: $SEQGPT_MODEL_DIR or %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the hub to answer before giving up (default: %(default)s)",
    )
    parser.add_argument("--check", action="store_true", help="only check --dest; download nothing")
    parser.add_argument("--model", choices=("seqgpt", "gte"), default="seqgpt",
                        help="seqgpt: SeqGPT-560M (default); gte: GTE-Chinese-Large for the knowledge base")
    args = parser.parse_args(argv)
    if args.model == "gte" and args.dest == Path(os.environ.get("SEQGPT_MODEL_DIR") or DEFAULT_MODEL_DIR):
        args.dest = Path(os.environ.get("SEQGPT_EMBED_MODEL_DIR") or DEFAULT_GTE_DIR)
    return args


def gte_problems(model_dir: Path) -> list[str]:
    """What is wrong with ``model_dir`` as a GTE-Chinese-Large folder (empty when it is usable)."""
    if not model_dir.is_dir():
        return [f"{model_dir} does not exist"]
    problems = []
    try:
        if json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type") != "bert":
            problems.append(f"{model_dir / 'config.json'} is not a BERT (GTE) config")
    except (OSError, ValueError) as exc:
        problems.append(f"{model_dir / 'config.json'} is missing or unreadable ({exc})")
    if not any((model_dir / name).is_file() for name in (SAFETENSORS, PICKLE)):
        problems.append(f"no weights in {model_dir} (expected {SAFETENSORS})")
    if not (model_dir / TOKENIZER).is_file() and not (model_dir / "vocab.txt").is_file():
        problems.append(f"no tokenizer in {model_dir} (expected {TOKENIZER} or vocab.txt)")
    return problems


def gte_main(args: argparse.Namespace) -> int:
    """Check or fetch GTE-Chinese-Large, with the same exit statuses as for SeqGPT."""
    dest: Path = args.dest
    if not args.check and args.source == "hf":
        from huggingface_hub import snapshot_download
        from huggingface_hub.constants import ENDPOINT

        reason = unreachable_reason(ENDPOINT, args.timeout)
        if reason is not None:
            print(f"download_model: cannot reach Hugging Face at {ENDPOINT}: {reason}.\n"
                  f"This machine looks offline. Copy a {GTE_REPO} folder (config.json, model.safetensors,\n"
                  f"tokenizer.json, 1_Pooling/) to {dest} or point SEQGPT_EMBED_MODEL_DIR at one, or set\n"
                  "HF_ENDPOINT to a mirror. Without it the knowledge base runs on demo embedding weights\n"
                  "(random: search scores and summary similarities are meaningless).", file=sys.stderr)
            return EXIT_UNREACHABLE
        try:
            print(f"downloading {GTE_REPO} into {dest} ...", flush=True)
            snapshot_download(GTE_REPO, revision=args.revision, local_dir=dest, allow_patterns=GTE_FILES)
        except Exception as exc:  # the hub client raises many types; all mean the same here
            print(f"download_model: downloading {GTE_REPO} failed: {exc}; run again to resume", file=sys.stderr)
            return EXIT_UNREACHABLE
    elif not args.check and args.source == "modelscope":
        print("download_model: --model gte supports --source hf or none", file=sys.stderr)
        return EXIT_UNREACHABLE
    problems = gte_problems(dest)
    for problem in problems:
        print(f"model check: {problem}", file=sys.stderr)
    if not problems:
        print(f"ok: GTE-Chinese-Large is ready in {dest}")
    return EXIT_BAD_MODEL if problems else 0


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.model == "gte":
        return gte_main(args)
    dest: Path = args.dest
    if args.check:
        problems = check_model_dir(dest)
        for problem in problems:
            print(f"model check: {problem}", file=sys.stderr)
        if not problems:
            print(f"ok: {describe_model_dir(dest)}")
        return EXIT_BAD_MODEL if problems else 0
    try:
        if args.source == "hf":
            download_from_hf(dest, args.revision, args.timeout)
        elif args.source == "modelscope":
            download_from_modelscope(dest, args.revision, args.timeout)
        converted = convert_pickle_to_safetensors(dest)
    except DownloadError as exc:
        print(f"download_model: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except OSError as exc:
        print(f"download_model: cannot prepare the model in {dest}: {exc}", file=sys.stderr)
        return EXIT_BAD_MODEL
    if converted is not None:
        print(f"converted {PICKLE} to {converted.name}")
    problems = check_model_dir(dest)
    for problem in problems:
        print(f"model check: {problem}", file=sys.stderr)
    if problems:
        return EXIT_BAD_MODEL
    print(f"SeqGPT-560M is ready in {dest}")
    use_instead_of_demo(dest)
    return 0


def _workspace_settings() -> Path | None:
    """The settings file of the appliance on this machine: the workspace scripts/start.sh recorded,
    else $SEQGPT_WORKSPACE (set in the image)."""
    instance = ROOT / ".seqgpt-instance"
    workspace = None
    if instance.is_file():
        for line in instance.read_text(encoding="utf-8").splitlines():
            if line.startswith("SEQGPT_WORKSPACE="):
                workspace = line.partition("=")[2]
    workspace = workspace or os.environ.get("SEQGPT_WORKSPACE")
    path = Path(workspace) / "seqgpt560m.env" if workspace else None
    return path if path is not None and path.is_file() else None


def use_instead_of_demo(dest: Path) -> None:
    """When the settings file points at demo weights (start.sh's fallback), point it at ``dest``, so
    that ``supervisorctl restart`` loads the real model: the one route the banner and the docs give."""
    settings = _workspace_settings()
    if settings is None or (dest / DEMO_MARKER).exists():
        return
    sys.path.insert(0, str(ROOT))
    from webui import settings_file  # light: no torch; absent while the image builds its weights layer

    current = Path(settings_file.effective(settings, "SEQGPT_MODEL_DIR"))
    if not (current / DEMO_MARKER).exists():
        return
    settings_file.remember(settings, {"SEQGPT_MODEL_DIR": str(dest.resolve())})
    restart = ("scripts/supervisorctl restart seqgpt560m" if (ROOT / ".seqgpt-instance").is_file()
               else "supervisorctl restart seqgpt560m")
    print(f"{settings}: SEQGPT_MODEL_DIR={dest.resolve()} in place of the demo weights in {current}; "
          f"load it with: {restart}")


if __name__ == "__main__":
    raise SystemExit(main())
