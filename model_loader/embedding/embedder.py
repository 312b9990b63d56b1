"""The embedding model (GTE-Chinese-Large): loaded once from a local folder, it turns texts into unit vectors.

Loaded lazily, on the first knowledge-base call or summary: GTE-Large holds 326 M parameters
(1.3 GB in fp32, 0.65 GB in fp16), which an appliance used only for classification and
extraction should not pay for. The first search therefore waits for the load (seconds); the
UI starts it in the background when the knowledge-base tab is opened.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..hf import transformers_names
from ..model.cpu_dtype import auto_cpu_dtype
from ..model.demo import DEMO_MARKER
from .demo import build_demo_embedding_model
from .settings import EmbeddingSettings
from .worker import BULK, INTERACTIVE, PriorityWorker

log = logging.getLogger(__name__)

HOW_TO_INSTALL = (
    "run `python scripts/download_model.py --model gte`, or set SEQGPT_EMBED_MODEL_DIR to a folder holding "
    "thenlper/gte-large-zh"
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Longest a caller waits for the embedding worker: one ingestion batch plus its own call.
WAIT_S = 600.0


@dataclass(frozen=True)
class EmbedderStatus:
    """What the status bar and /health say about the embedding model."""

    state: str  # "idle" (loads on first use), "loading", "ready" or "error"
    model_dir: str
    is_demo: bool = False
    device: str = ""
    dtype: str = ""
    dimensions: int = 0
    pooling: str = ""
    error: str | None = None
    load_seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def embed_dir_problems(model_dir: Path) -> list[str]:
    """What is wrong with ``model_dir`` as a GTE folder (empty when it is usable). A folder this user
    may not read (the default lies under /root) is a problem like a missing one, not an error: the
    status reads it when the app starts."""
    try:
        return _folder_problems(model_dir)
    except OSError as exc:
        return [f"{model_dir} cannot be read ({exc.strerror or exc})"]


def _folder_problems(model_dir: Path) -> list[str]:
    if not model_dir.is_dir():
        return [f"{model_dir} does not exist"]
    problems = []
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "bert":
            problems.append(f"{model_dir}/config.json is a {config.get('model_type')!r} model, not BERT (GTE)")
    except (OSError, ValueError) as exc:
        problems.append(f"{model_dir}/config.json is missing or unreadable ({exc})")
    if not any((model_dir / name).is_file() for name in _WEIGHT_FILES):
        problems.append(f"no weights in {model_dir} (expected {' or '.join(_WEIGHT_FILES)})")
    if not (model_dir / "tokenizer.json").is_file() and not (model_dir / "vocab.txt").is_file():
        problems.append(f"no tokenizer in {model_dir} (expected tokenizer.json or vocab.txt)")
    return problems


def read_pooling(model_dir: Path) -> str:
    """The model's own pooling from its sentence-transformers file: ``cls`` or ``mean``. GTE-zh uses CLS."""
    path = model_dir / "1_Pooling" / "config.json"
    if not path.is_file():
        return "cls"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    raise ModelLoadError(f"{path} asks for a pooling this appliance does not run: use CLS or mean pooling")


class Embedder:
    """Texts in, L2-normalised float32 vectors out, on its own worker thread (interactive calls first)."""

    def __init__(self, settings: EmbeddingSettings | None = None, device: Callable[[], str] | None = None) -> None:
        self.settings = settings or EmbeddingSettings.from_env()
        self._device = device or (lambda: "")
        self._status = EmbedderStatus(state="idle", **self._planned())
        self._status_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._worker: PriorityWorker | None = None
        self._model: Any = None  # a transformers BertModel once loaded
        self._tokenizer: Any = None

    @property
    def status(self) -> EmbedderStatus:
        with self._status_lock:
            return self._status

    def _set_status(self, **changes: Any) -> None:
        with self._status_lock:
            self._status = replace(self._status, **changes)

    # ---- loading ---------------------------------------------------------------------------

    def _planned(self) -> dict[str, Any]:
        """What the first use will load, read from the disk without building anything: so that before
        then the status names demo weights where they will serve, not a folder that holds no model."""
        settings = self.settings
        if not embed_dir_problems(settings.model_dir):
            return {"model_dir": str(settings.model_dir), "is_demo": (settings.model_dir / DEMO_MARKER).exists()}
        if settings.demo_fallback:
            return {"model_dir": str(settings.demo_dir), "is_demo": True}
        return {"model_dir": str(settings.model_dir), "is_demo": False}

    def _model_dir(self) -> tuple[Path, bool]:
        """The folder to load and whether it holds demo weights; builds demo weights where allowed."""
        settings = self.settings
        problems = embed_dir_problems(settings.model_dir)
        if not problems:
            return settings.model_dir, (settings.model_dir / DEMO_MARKER).exists()
        if not settings.demo_fallback:
            raise ModelLoadError(f"no embedding model at {settings.model_dir} ({problems[0]}): {HOW_TO_INSTALL}")
        if embed_dir_problems(settings.demo_dir):
            build_demo_embedding_model(settings.demo_dir)
        log.warning(
            "\n%s\nEMBEDDING MODEL: DEMO WEIGHTS (random) in %s: search scores and summary similarities are "
            "MEANINGLESS.\nNo GTE-Chinese-Large at %s (%s): %s.\n%s",
            "!" * 78, settings.demo_dir, settings.model_dir, problems[0], HOW_TO_INSTALL, "!" * 78,
        )
        return settings.demo_dir, True

    def load(self) -> None:
        """Load the model now (blocking); a second call returns at once. Failures are kept in ``status``."""
        with self._load_lock:
            if self._model is not None:
                return
            self._set_status(state="loading", error=None)
            started = time.perf_counter()
            try:
                self._load(started)
            except ModelLoadError as exc:
                self._set_status(state="error", error=str(exc))
                raise
            except Exception as exc:
                self._set_status(state="error", error=f"{type(exc).__name__}: {exc}")
                raise ModelLoadError(f"loading the embedding model failed: {type(exc).__name__}: {exc}") from exc

    def _load(self, started: float) -> None:
        import torch

        AutoModel, AutoTokenizer = transformers_names("AutoModel", "AutoTokenizer")

        model_dir, is_demo = self._model_dir()
        pooling = read_pooling(model_dir)
        device = self._device() or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.settings.dtype
        if dtype == "auto":
            # On a CPU, the engine's rule: a 16-bit type where the processor multiplies it fast (GTE-Large
            # embeds about twice as fast in bf16 on AVX512-BF16), else float32.
            dtype = "float16" if device.startswith("cuda") else auto_cpu_dtype()
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
        model = AutoModel.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False, dtype=getattr(torch, dtype),
            add_pooling_layer=False,  # GTE pools the [CLS] vector itself; BERT's pooler is not used
        )
        model.eval().to(device)
        self._tokenizer, self._model = tokenizer, model
        self._worker = PriorityWorker()
        self._set_status(
            state="ready", model_dir=str(model_dir), is_demo=is_demo, device=device, dtype=dtype,
            dimensions=int(model.config.hidden_size), pooling=pooling,
            load_seconds=round(time.perf_counter() - started, 3),
        )
        log.info("loaded the embedding model %s on %s as %s (%s pooling)", model_dir, device, dtype, pooling)

    def load_in_background(self) -> None:
        """Start loading on a thread of its own unless loaded or loading; errors land in ``status``."""
        if self.status.state in ("idle",):
            threading.Thread(target=self._load_quietly, name="seqgpt-embed-load", daemon=True).start()

    def _load_quietly(self) -> None:
        try:
            self.load()
        except ModelLoadError:
            log.exception("the embedding model failed to load")

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    # ---- embedding -----------------------------------------------------------------------------

    def embed(
        self, texts: Sequence[str], bulk: bool = False, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit vectors of ``texts`` (rows in order). ``bulk`` (ingestion) runs behind interactive calls,
        one batch at a time; ``on_batch`` hears how many texts are done after each batch."""
        self.load()
        assert self._worker is not None
        if not texts:
            return np.zeros((0, self.status.dimensions), dtype=np.float32)
        size = self.settings.batch_size
        # Texts of similar length share a batch, so little of each batch is padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if bulk else list(range(len(texts)))
        out = np.zeros((len(texts), self.status.dimensions), dtype=np.float32)
        done = 0
        for first in range(0, len(order), size):
            rows = order[first : first + size]
            batch = [texts[i] for i in rows]
            future = self._worker.submit(partial(self._forward, batch), BULK if bulk else INTERACTIVE)
            out[rows] = future.result(timeout=WAIT_S)
            done += len(rows)
            if on_batch is not None:
                on_batch(done)
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        encoded = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.settings.max_tokens, return_tensors="pt"
        ).to(self._model.device)
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
            if self.status.pooling == "mean":
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            else:
                pooled = hidden[:, 0]
            vectors = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return vectors.cpu().numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit vectors."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
