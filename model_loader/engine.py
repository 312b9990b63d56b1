"""The engine: the small interface the UI and API call (classify, extract, generate).

Requests are validated and tokenised in the caller's thread, then run by one
worker thread that owns the model and batches whatever is waiting, so the engine
is safe to call from many threads at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from . import allocator
from .bloom import BloomRunner
from .decoding import decode_fields, greedy_generate, score_labels, split_by_sizes
from .errors import InvalidInputError, ModelLoadError, ModelNotReadyError
from .loading import LoadedModel, load_model, resolve_device
from .official import build_reference_model, official_classification, official_extraction
from .prompts import check_text, complete_free_prompt, parse_labels
from .results import Classification, EngineStatus, Extraction, Generation
from .settings import Settings
from .tasks import ClassifyPlan, ExtractPlan, Planner
from .vocabulary import Vocabulary
from .worker import BatchWorker

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a caller waits for the model before giving up; generous, as a CPU
# batch of long texts can take a while.
REQUEST_TIMEOUT_S = 600.0


def _on_a_thread_of_its_own(work: Callable[[], T]) -> T:
    """Run ``work`` on a thread that ends with it, and return its result or raise its error.

    Loading converts and reorders large tensors in parallel, which gives the calling thread
    an OpenMP thread pool for the rest of its life. Beside the model worker's own pool that
    makes more OpenMP threads than cores, and libgomp then stops spinning between parallel
    regions: every later product pays for waking its threads, and single extraction
    requests were measured a third slower. A thread that ends takes its pool with it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqgpt-load") as pool:
        return pool.submit(work).result()


class Engine:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._lock = threading.Lock()
        self._status = EngineStatus(
            state="idle", device="", dtype="", model_dir=str(self.settings.model_dir)
        )
        self._loaded: LoadedModel | None = None
        self._runner: BloomRunner | None = None
        self._planner: Planner | None = None
        self._worker: BatchWorker | None = None
        self._reference_model = None  # transformers' model, built only for official decoding

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def status(self) -> EngineStatus:
        with self._lock:
            return self._status

    def _set_status(self, **changes: object) -> None:
        with self._lock:
            values = {**self._status.__dict__, **changes}
            self._status = EngineStatus(**values)

    def load(self, device: str | None = None) -> None:
        """Load the weights (blocking). Failures are recorded in ``status`` and raised."""
        self._set_status(state="loading", error=None)
        started = time.perf_counter()
        try:
            loaded, runner, planner = _on_a_thread_of_its_own(lambda: self._build(device))
        except ModelLoadError as exc:
            self._set_status(state="error", error=str(exc))
            raise
        except Exception as exc:
            self._set_status(state="error", error=f"{type(exc).__name__}: {exc}")
            raise ModelLoadError(f"loading the model failed: {type(exc).__name__}: {exc}") from exc
        old_worker = self._worker
        self._loaded, self._runner, self._planner = loaded, runner, planner
        self._reference_model = None
        self._worker = BatchWorker(
            {
                "classify": self._run_classify,
                "extract": self._run_extract,
                "generate": self._run_generate,
                "health": self._run_health,
            },
            max_batch=self.settings.max_batch_size,
            gather_seconds=self.settings.batch_gather_ms / 1000,
            after_batch=allocator.release_freed,
        )
        if old_worker is not None:
            old_worker.stop()
        allocator.release_freed()  # what loading converted and reordered on the way
        self._set_status(
            state="ready",
            device=loaded.device,
            dtype=loaded.dtype,
            is_demo=loaded.is_demo,
            load_seconds=round(time.perf_counter() - started, 3),
        )

    def _build(self, device: str | None) -> tuple[LoadedModel, BloomRunner, Planner]:
        loaded = load_model(self.settings, device)
        runner = BloomRunner(loaded.weights)
        return loaded, runner, Planner(loaded.tokenizer, Vocabulary(loaded.tokenizer), self.settings)

    def available_devices(self) -> list[str]:
        import torch

        return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]

    def switch_device(self, device: str) -> None:
        """Reload the model on ``cuda`` or ``cpu`` (the UI's device switch)."""
        if device not in self.available_devices():
            choices = ", ".join(self.available_devices())
            raise InvalidInputError(f"device {device!r} is not available here: choose one of {choices}")
        resolve_device(device)
        self.close()
        self.load(device)

    def close(self) -> None:
        """Stop the model worker; the engine reports idle until loaded again."""
        self._set_status(state="idle")
        if self._worker is not None:
            self._worker.stop()
        self._worker = None

    @property
    def queue_depth(self) -> int:
        return self._worker.waiting if self._worker else 0

    def health_check(self) -> None:
        """A real one-token forward pass on the model's device; raises ModelNotReadyError.

        While a batch is running, that batch is the proof that the model works: a check
        queued behind it would wait for minutes on a CPU with long texts, and fail a load
        balancer's or Docker's health check on a busy but sound appliance. A batch running
        for longer than any request may wait is taken for a hung worker."""
        worker = self._worker
        busy = worker.running_for() if worker is not None else None
        if busy is not None and self.status.ready:
            if busy > REQUEST_TIMEOUT_S:
                raise ModelNotReadyError(f"health check failed: one batch has been running for {busy:.0f} s")
            return
        self._submit("health", None).result(timeout=60.0)

    # ---- the interface ------------------------------------------------------------------

    def classify(self, text: str, labels: str | list[str]) -> Classification:
        with self._preparing():
            planner = self._ready_planner()
            text = check_text(text, self.settings.max_text_chars)
            labels = parse_labels(labels, self.settings.max_labels, self.settings.max_label_chars)
            job = self._submit("classify", planner.plan_classification(text, labels))
        return job.result(timeout=REQUEST_TIMEOUT_S)

    def extract(
        self, text: str, fields: str | list[str], threshold: float = 0.0, exclusive: bool = False
    ) -> Extraction:
        with self._preparing():
            planner = self._ready_planner()
            text = check_text(text, self.settings.max_text_chars)
            fields = parse_labels(fields, self.settings.max_labels, self.settings.max_label_chars, what="fields")
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
                raise InvalidInputError(f"threshold must be a number from 0 to 1, got {threshold!r}")
            plan = planner.plan_extraction(text, fields)
            job = self._submit("extract", (plan, float(threshold), bool(exclusive)))
        return job.result(timeout=REQUEST_TIMEOUT_S)

    def generate(self, prompt: str, max_new_tokens: int | None = None) -> Generation:
        limit = self.settings.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = limit
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= limit:
            raise InvalidInputError(f"max_new_tokens must be a whole number from 1 to {limit}, got {max_new_tokens!r}")
        with self._preparing():
            planner = self._ready_planner()
            prompt = check_text(prompt, self.settings.max_prompt_chars, what="prompt")
            tokens = planner.encode(complete_free_prompt(prompt))
            room = self.settings.window_tokens - len(tokens)
            if room < 1:
                raise InvalidInputError(
                    f"the prompt is {len(tokens)} tokens; the model reads at most {self.settings.window_tokens}: "
                    "shorten it, or use the classification / extraction tasks, which split long texts"
                )
            job = self._submit("generate", (tokens, min(max_new_tokens, room), max_new_tokens > room))
        return job.result(timeout=REQUEST_TIMEOUT_S)

    # ---- plumbing ------------------------------------------------------------------------

    def _ready_planner(self) -> Planner:
        status = self.status
        if not status.ready or self._planner is None:
            reason = status.error if status.state == "error" else f"the model is {status.state}"
            raise ModelNotReadyError(f"model not ready: {reason}")
        return self._planner

    def _preparing(self) -> AbstractContextManager[None]:
        """Held while a caller validates, tokenises and hands over its request: a batch
        being gathered meanwhile waits for it (see BatchWorker.expecting)."""
        worker = self._worker
        return worker.expecting() if worker is not None else nullcontext()

    def _submit(self, kind: str, payload: object) -> Future:
        worker = self._worker
        if worker is None or not self.status.ready:
            raise ModelNotReadyError(f"model not ready: the model is {self.status.state}")
        return worker.submit(kind, payload)

    def _reference(self):
        if self._reference_model is None:
            self._reference_model = build_reference_model(self._loaded.config, self._loaded.weights)
        return self._reference_model

    def _run_classify(self, plans: list[ClassifyPlan]) -> list[Classification]:
        label_sets = [s for plan in plans for s in plan.label_sets]
        scores = score_labels(self._runner, label_sets, self._planner.eos_id)
        results = []
        for plan, plan_scores in zip(plans, split_by_sizes(scores, [len(p.label_sets) for p in plans]), strict=True):
            result = self._planner.classification_result(plan, plan_scores)
            if self.settings.decoding == "official":
                result = official_classification(
                    self._reference(), self._loaded.tokenizer, plan, result, self.settings.max_new_tokens
                )
            results.append(result)
        return results

    def _run_extract(self, payloads: list[tuple[ExtractPlan, float, bool]]) -> list[Extraction]:
        if self.settings.decoding == "official":
            model, tokenizer = self._reference(), self._loaded.tokenizer
            return [
                official_extraction(model, tokenizer, plan, threshold, exclusive, self.settings.max_new_tokens)
                for plan, threshold, exclusive in payloads
            ]
        requests = [r for plan, _, _ in payloads for r in plan.requests]
        exact = self.settings.extract_exact_tokens or None
        answers = decode_fields(
            self._runner, requests, self._planner.stop_ids, self.settings.extract_max_new_tokens, exact
        )
        per_plan = split_by_sizes(answers, [len(plan.requests) for plan, _, _ in payloads])
        return [
            self._planner.extraction_result(plan, plan_answers, threshold, exclusive)
            for (plan, threshold, exclusive), plan_answers in zip(payloads, per_plan, strict=True)
        ]

    def _run_generate(self, payloads: list[tuple[list[int], int, bool]]) -> list[Generation]:
        eos = -1 if self.settings.generate_ignore_eos else self._planner.eos_id  # -1: no token ends a row
        outputs = greedy_generate(self._runner, [p[0] for p in payloads], [p[1] for p in payloads], eos)
        results = []
        for (tokens, _, truncated), new in zip(payloads, outputs, strict=True):
            text = self._loaded.tokenizer.decode(new, skip_special_tokens=True)
            results.append(Generation(text=text, prompt_tokens=len(tokens), new_tokens=len(new), truncated=truncated))
        return results

    def _run_health(self, payloads: list[None]) -> list[None]:
        import torch

        _, hidden = self._runner.prefill([[self._planner.eos_id]])
        # A few rows of the output projection: over the whole vocabulary, the first probe would
        # make the appliance hold the projection that only free prompts need (OutputProjection).
        some = torch.arange(min(256, self._runner.output_weight.shape[0]))
        if not torch.isfinite(self._runner.scores(hidden, some)).all():
            raise ModelNotReadyError("health check failed: the model produced non-finite scores")
        return [None for _ in payloads]
