"""/health's list of replicas drops a dead one once its replacement answers, not 30 s later."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from model_loader.results import EngineStatus
from serving.remote import RemoteEngine, live_replicas
from serving.replicas import ReplicaInfo
from serving.wire import encode_result

STATUS = EngineStatus(state="ready", device="cpu", dtype="float32", model_dir="/m")


def identity(replica_id: str) -> dict[str, object]:
    return {"replica_id": replica_id, "pid": 1, "node": "n", "state": "ready", "device": "cpu", "dtype": "float32"}


class Deployment:
    """Answers status calls like Ray Serve's proxy, from whichever replica ``answering`` names."""

    def __init__(self) -> None:
        self.answering = "a"
        self.running = 2
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                body = {"replica": identity(owner.answering), "result": {
                    "engine": encode_result(STATUS),
                    "deployment": {"states": {"RUNNING": owner.running}, "health": "HEALTHY"}}}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/seqgpt"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def deployment() -> Iterator[Deployment]:
    made = Deployment()
    yield made
    made.server.shutdown()


def seen_ids(engine: RemoteEngine) -> list[str]:
    return [info.replica_id for info in engine.status.replicas]


def test_a_dead_replica_leaves_the_list_when_its_replacement_answers(deployment):
    engine = RemoteEngine(deployment.url, timeout_s=10)
    for replica in ("a", "b"):
        deployment.answering = replica
        engine.refresh_status()
    assert seen_ids(engine) == ["a", "b"]
    # "a" dies; Ray Serve starts "c", which answers next while the count stays at two running.
    deployment.answering = "c"
    engine.refresh_status()
    assert seen_ids(engine) == ["b", "c"]


def test_without_a_running_count_every_replica_heard_from_lately_is_listed():
    info = {name: ReplicaInfo(**identity(name)) for name in "xyz"}
    seen = {name: (float(n), info[name]) for n, name in enumerate("xyz")}
    assert [r.replica_id for r in live_replicas(seen, 0)] == ["x", "y", "z"]
    assert [r.replica_id for r in live_replicas(seen, 1)] == ["z"]
