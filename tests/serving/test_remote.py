"""RemoteEngine over real HTTP against stand-in replicas: retry once when a replica is lost, else a 503 error."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_loader.errors import InvalidInputError
from model_loader.results import Classification
from model_loader.settings import Settings
from model_loader.tasks.options import ClassifyRequest
from serving.remote import RemoteEngine
from serving.wire import ReplicaUnavailableError, encode_error, encode_result
from webui.outcomes import outcome_of

IDENTITY = {"replica_id": "r1", "pid": 7, "node": "n", "state": "ready", "device": "cpu", "dtype": "float32"}
RESULT = Classification(label="财经", scores={"财经": 0.75, "体育": 0.25})


class StandIn:
    """An HTTP server answering like Ray Serve's proxy: scripted answers, one per call, then the last again."""

    def __init__(self, answers: list[tuple[int, object]]) -> None:
        self.answers = answers
        self.calls: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                owner.calls.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, body = owner.answers[min(len(owner.calls), len(owner.answers)) - 1]
                if body == "hang":
                    time.sleep(3)
                    body = {}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/seqgpt"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stand_in() -> Iterator[type[StandIn]]:
    made: list[StandIn] = []

    def make(answers: list[tuple[int, object]]) -> StandIn:
        made.append(StandIn(answers))
        return made[-1]

    yield make  # type: ignore[misc]
    for server in made:
        server.server.shutdown()


def ok(result: object) -> tuple[int, object]:
    return 200, {"replica": IDENTITY, "result": encode_result(result)}


def test_a_call_returns_the_replicas_result_and_sends_the_request_id(stand_in) -> None:
    replica = stand_in([ok(RESULT)])
    engine = RemoteEngine(replica.url, request_id=lambda: "req-1")
    assert engine.classify("文本", ["财经", "体育"]) == RESULT
    assert replica.calls == [{"call": "classify", "kwargs": {"text": "文本", "labels": ["财经", "体育"]},
                              "request_id": "req-1"}]
    assert engine.answers_by_replica() == {"r1": 1}


def test_input_the_replica_refuses_comes_back_as_the_engines_own_error(stand_in) -> None:
    # What only the replica can tell (how many tokens a prompt takes) is refused there.
    refusal = InvalidInputError("the prompt is 2000 tokens; the model reads at most 1024")
    replica = stand_in([(200, {"replica": IDENTITY, "error": encode_error(refusal)})])
    with pytest.raises(InvalidInputError, match="the prompt is 2000 tokens") as caught:
        RemoteEngine(replica.url).generate("输入: 很长\n输出: [GEN]")
    assert outcome_of(caught.value).status == 422
    assert len(replica.calls) == 1, "bad input is not retried"


def test_bad_input_is_refused_before_any_replica_is_asked_in_the_engine_s_words(stand_in) -> None:
    replica = stand_in([ok(RESULT)])
    with pytest.raises(InvalidInputError) as caught:
        RemoteEngine(replica.url).classify("", ["a"])
    with pytest.raises(InvalidInputError) as local:
        ClassifyRequest.checked(Settings(), text="", labels=["a"])
    assert str(caught.value) == str(local.value) and replica.calls == []


def test_a_lost_replica_is_retried_once_and_the_retry_answers(stand_in) -> None:
    replica = stand_in([(500, "Internal Server Error"), ok(RESULT)])
    assert RemoteEngine(replica.url).classify("文本", "财经，体育") == RESULT
    assert len(replica.calls) == 2


def test_two_lost_attempts_give_a_503_with_retry_after(stand_in) -> None:
    replica = stand_in([(500, "Internal Server Error"), (503, "no replicas")])
    with pytest.raises(ReplicaUnavailableError, match="no replica could answer") as caught:
        RemoteEngine(replica.url).classify("文本", "财经")
    assert len(replica.calls) == 2
    outcome = outcome_of(caught.value)
    assert outcome.status == 503 and outcome.headers == {"Retry-After": "3"}


def test_nothing_listening_is_a_503_not_a_hang() -> None:
    with pytest.raises(ReplicaUnavailableError):
        RemoteEngine("http://127.0.0.1:9/seqgpt", timeout_s=5).classify("文本", "财经")


def test_a_replica_that_does_not_answer_in_time_ends_the_call_at_the_timeout(stand_in) -> None:
    replica = stand_in([(200, "hang")])
    started = time.monotonic()
    with pytest.raises(ReplicaUnavailableError, match="no answer"):
        RemoteEngine(replica.url, timeout_s=1).classify("文本", "财经")
    assert time.monotonic() - started < 2.5
