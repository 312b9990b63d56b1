"""A request's way into the model worker's queue: cut into pieces, estimated, admitted or refused, awaited.

The engine refuses a request at once (OverloadedError, with the estimated wait as the time to
come back) when the work the scheduler would run before it passes ``max_wait_s``: a client is
told to retry instead of waiting minutes for a queue it cannot see. A request alone is always
admitted, however long it is. While the caller waits, it watches the request's ``abandoned``
event (see scheduling.ABANDONED): once it is set, or the deadline passes, the request's queued
jobs are cancelled, and the worker never runs them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass

from ..errors import AbandonedError, OverloadedError
from ..settings import Settings
from ..tasks import ClassifyPlan, ExtractPlan, pieces
from ..text.tokens import Tokens
from .request_batching import BatchWorker
from .scheduling import ABANDONED, AnswerSteps

# How often a waiting caller looks whether its request was abandoned.
_WATCH_S = 0.2


@dataclass
class Pending:
    """A request's jobs in the queue, and how their answers become its result."""

    futures: list[Future]
    finish: Callable[[list[object]], object]
    abandoned: threading.Event | None

    def result(self, timeout: float) -> object:
        """The request's result; AbandonedError once the request is abandoned, TimeoutError past ``timeout``."""
        deadline = time.monotonic() + timeout
        remaining = set(self.futures)
        try:
            while remaining:
                if self.abandoned is not None and self.abandoned.is_set():
                    raise AbandonedError("the client went away before the answer was ready; its work was dropped")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer within {timeout:.0f} s; the request's work was dropped")
                done, remaining = wait(remaining, timeout=min(_WATCH_S, left), return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.cancelled():  # dropped by the worker: the request was abandoned meanwhile
                        raise AbandonedError("the client went away before the answer was ready; its work was dropped")
                    if future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]
        except BaseException:
            for future in self.futures:
                future.cancel()  # a job not yet running is never run
            raise
        return self.finish([future.result() for future in self.futures])


def enqueue(
    batcher: BatchWorker, settings: Settings, tokens: Tokens, plan: object, split: bool, steps: AnswerSteps
) -> Pending:
    """Queue ``plan`` (one job per piece of its text when ``split``), or raise OverloadedError. Its
    extraction pieces are estimated with the decode steps ``steps`` expects, and teach it theirs."""
    if split and isinstance(plan, ClassifyPlan | ExtractPlan):
        payloads: list[object] = list(pieces.split(plan))

        def finish(answers: list[object]) -> object:
            if isinstance(plan, ExtractPlan):
                for piece_answers in answers:
                    steps.observe(pieces.steps_taken(piece_answers, settings.extract_max_new_tokens))  # type: ignore[arg-type]
            return pieces.merge(tokens, plan, answers)
    else:
        payloads = [plan]

        def finish(answers: list[object]) -> object:
            return answers[0]

    abandoned = ABANDONED.get()
    if abandoned is not None and abandoned.is_set():  # gone while it waited for a slot
        raise AbandonedError("the client went away before the request reached the model; nothing was run")
    expected = steps.expected()
    estimates = [pieces.work_and_shared(p, settings, expected) for p in payloads]
    # A request is answered once its last piece is: what counts is the wait before its longest piece starts.
    admit(batcher, settings, type(payloads[0]), max(work for work, _ in estimates))
    futures = [batcher.submit(p, work, abandoned, shared)
               for p, (work, shared) in zip(payloads, estimates, strict=True)]
    return Pending(futures, finish, abandoned)


def admit(batcher: BatchWorker, settings: Settings, kind: type, work: float) -> None:
    """Refuse with OverloadedError when the estimated wait before ``work`` starts passes the limit."""
    limit = settings.max_wait_s
    if not limit:
        return
    ahead = batcher.wait_ahead(kind, work)
    if ahead > limit:
        seconds = math.ceil(ahead)
        raise OverloadedError(
            f"busy: about {seconds} s of work is queued ahead of this request, more than the "
            f"{limit} s a request may wait (SEQGPT_MAX_WAIT_S); try again in {seconds} s",
            retry_after_s=seconds,
        )
