"""The engine: the small interface the UI and API call (classify, extract, generate, status, health).

Each task's own steps live in tasks/; how the model answers them, in backends/.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from .backends import Backend, build_backend, run_plans
from .batching.admission import Pending, enqueue
from .batching.request_batching import BatchWorker
from .batching.scheduling import AnswerSteps, WorkRate, prior_for
from .embedding import Embedder, EmbeddingSettings
from .errors import InvalidInputError, ModelLoadError, ModelNotReadyError, SettingsError
from .model import allocator
from .model.bloom import BloomRunner
from .model.loading import LoadedModel, load_model, resolve_device
from .results import Classification, EngineStatus, Extraction, Generation, Summary
from .settings import Settings
from .tasks import HealthProbe, classify, extract, generate, pieces, summarize
from .tasks.options import ClassifyRequest, ExtractRequest, GenerateRequest, SummarizeRequest
from .text.tokens import Tokens

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a caller waits for the model before giving up; generous, as a CPU
# batch of long texts can take a while.
REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ModelView:
    """What a loaded engine runs on, for tests and benchmarks that look inside; callers of the
    engine need none of it. Read-only: the engine swaps the whole view when it loads again."""

    loaded: LoadedModel
    runner: BloomRunner
    tokens: Tokens
    backend: Backend


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
    """Lifecycle (load, switch device, close), the three tasks, status and health check.

    Requests are checked and planned in the caller's thread, then run by one worker thread
    that owns the model and batches whatever is waiting, so the engine is safe to call from
    many threads at once.
    """

    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings.from_env()
        # GTE, for the knowledge base and summaries' similarity; it loads on first use, on SeqGPT's device.
        self.embedder = embedder or Embedder(EmbeddingSettings.from_env(), device=lambda: self.status.device)
        self._lock = threading.Lock()
        self._status = EngineStatus(
            state="idle", device="", dtype="", model_dir=str(self.settings.model_dir)
        )
        self._view: ModelView | None = None
        self._batcher: BatchWorker | None = None
        self._field_steps = AnswerSteps()  # what extraction fields take, for the scheduler's estimates
        self._settings_error: SettingsError | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Engine:
        """An engine with the ``SEQGPT_*`` settings. A bad one does not stop the server: the engine
        then stays in the error state with the setting's message, which /health and the status bar
        show, and loading raises it."""
        try:
            return cls(Settings.from_env(environ))
        except SettingsError as exc:
            engine = cls(Settings())
            engine._settings_error = exc
            engine._set_status(state="error", error=str(exc))
            return engine

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def status(self) -> EngineStatus:
        with self._lock:
            return self._status

    @property
    def model(self) -> ModelView | None:
        """The loaded model's parts (None before the first load)."""
        return self._view

    def _set_status(self, **changes: object) -> None:
        with self._lock:
            values = {**self._status.__dict__, **changes}
            self._status = EngineStatus(**values)

    def load(self, device: str | None = None) -> None:
        """Load the weights (blocking). Failures are recorded in ``status`` and raised."""
        if self._settings_error is not None:
            raise self._settings_error
        self._set_status(state="loading", error=None)
        started = time.perf_counter()
        try:
            view = _on_a_thread_of_its_own(lambda: self._build(device))
        except ModelLoadError as exc:
            self._set_status(state="error", error=str(exc))
            raise
        except Exception as exc:
            self._set_status(state="error", error=f"{type(exc).__name__}: {exc}")
            raise ModelLoadError(f"loading the model failed: {type(exc).__name__}: {exc}") from exc
        old_batcher = self._batcher
        self._view = view
        self._batcher = BatchWorker(
            partial(run_plans, view.backend),
            max_batch=self.settings.max_batch_size,
            gather_seconds=self.settings.batch_gather_ms / 1000,
            after_batch=allocator.release_freed,
            rate=WorkRate(prior_for(view.loaded.device)),
        )
        if old_batcher is not None:
            old_batcher.stop()
        allocator.release_freed()  # what loading converted and reordered on the way
        loaded = view.loaded
        self._set_status(
            state="ready",
            device=loaded.device,
            dtype=loaded.dtype,
            is_demo=loaded.is_demo,
            load_seconds=round(time.perf_counter() - started, 3),
            attention=view.runner.attention.describe(),
            weights=loaded.weights_mode,
        )

    def _build(self, device: str | None) -> ModelView:
        loaded = load_model(self.settings, device)
        runner = BloomRunner(loaded.weights)
        tokens = Tokens(loaded.tokenizer)
        return ModelView(loaded, runner, tokens, build_backend(self.settings, loaded, runner, tokens))

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
        if self._batcher is not None:
            self._batcher.stop()
        self._batcher = None

    @property
    def queue_depth(self) -> int:
        return self._batcher.waiting if self._batcher else 0

    @property
    def queued_seconds(self) -> float:
        return self._batcher.queued_seconds() if self._batcher else 0.0

    def health_check(self) -> None:
        """A real one-token forward pass on the model's device; raises ModelNotReadyError.

        While a batch is running, that batch is the proof that the model works: a check
        queued behind it would wait for minutes on a CPU with long texts, and fail a load
        balancer's or Docker's health check on a busy but sound appliance. A batch running
        for longer than any request may wait is taken for a hung worker."""
        batcher = self._batcher
        busy = batcher.running_for() if batcher is not None else None
        if busy is not None and self.status.ready:
            if busy > REQUEST_TIMEOUT_S:
                raise ModelNotReadyError(f"health check failed: one batch has been running for {busy:.0f} s")
            return
        self._submit(HealthProbe()).result(timeout=60.0)

    # ---- the interface ------------------------------------------------------------------

    # Each task checks its input first, with its one checked request type: bad input is wrong in any model state.

    def classify(self, text: str, labels: str | Sequence[str]) -> Classification:
        request = ClassifyRequest.checked(self.settings, text=text, labels=labels)
        with self._preparing():
            view = self._ready_view()
            pending = self._enqueue(view, classify.plan(view.tokens, self.settings, request))
        return pending.result(timeout=REQUEST_TIMEOUT_S)  # type: ignore[return-value]

    def extract(
        self, text: str, fields: str | Sequence[str], threshold: float = 0.0, exclusive: bool = False
    ) -> Extraction:
        request = ExtractRequest.checked(
            self.settings, text=text, fields=fields, threshold=threshold, exclusive=exclusive
        )
        with self._preparing():
            view = self._ready_view()
            pending = self._enqueue(view, extract.plan(view.tokens, self.settings, request))
        return pending.result(timeout=REQUEST_TIMEOUT_S)  # type: ignore[return-value]

    def generate(self, prompt: str, max_new_tokens: int | None = None) -> Generation:
        request = GenerateRequest.checked(self.settings, prompt=prompt, max_new_tokens=max_new_tokens)
        with self._preparing():
            view = self._ready_view()
            pending = self._enqueue(view, generate.plan(view.tokens, self.settings, request))
        return pending.result(timeout=REQUEST_TIMEOUT_S)  # type: ignore[return-value]

    def summarize(self, text: str, max_chars: int | None = None) -> Summary:
        """A summary through greedy generation, with its compression ratio and GTE similarity to the text."""
        request = SummarizeRequest.checked(self.settings, text=text, max_chars=max_chars)
        with self._preparing():
            view = self._ready_view()
            plan = summarize.plan(view.tokens, self.settings, request)
            jobs = [self._submit(piece) for piece in plan.generations]
        generations = [job.result(timeout=REQUEST_TIMEOUT_S) for job in jobs]
        return summarize.result(self.settings, plan, generations, self.embedder.embed)

    # ---- plumbing ------------------------------------------------------------------------

    def _ready_view(self) -> ModelView:
        status = self.status
        if not status.ready or self._view is None:
            reason = status.error if status.state == "error" else f"the model is {status.state}"
            raise ModelNotReadyError(f"model not ready: {reason}")
        return self._view

    def _preparing(self) -> AbstractContextManager[None]:
        """Held while a caller validates, tokenises and hands over its request: a batch
        being gathered meanwhile waits for it (see BatchWorker.expecting)."""
        batcher = self._batcher
        return batcher.expecting() if batcher is not None else nullcontext()

    def _enqueue(self, view: ModelView, plan: object) -> Pending:
        """Queue a request's plan; with our fast decoding, one job per piece of its text, so that
        short requests can run between a long text's pieces. OverloadedError when the wait is too long."""
        batcher = self._batcher
        if batcher is None or not self.status.ready:
            raise ModelNotReadyError(f"model not ready: the model is {self.status.state}")
        split = view.backend.name == "fast"
        return enqueue(batcher, self.settings, view.tokens, plan, split, self._field_steps)

    def _submit(self, plan: object) -> Future:
        batcher = self._batcher
        if batcher is None or not self.status.ready:
            raise ModelNotReadyError(f"model not ready: the model is {self.status.state}")
        work, shared = pieces.work_and_shared(plan, self.settings)
        return batcher.submit(plan, work, shared=shared)
