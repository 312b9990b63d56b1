"""Property: whatever a careless or hostile client sends to a JSON route, the server answers it and keeps serving.

Inputs are generated from a fixed seed (so a failure can be replayed): random Unicode with lone
surrogates, control and zero-width characters, huge and empty values, wrong JSON types, deep
nesting, broken JSON and oversized bodies. For every one: no 500, no dropped connection, a JSON
answer with ``error`` or a result and a request id, and that id in the log.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator

import httpx
import pytest
from servers import RunningServer, start_server, stop_server

pytestmark = pytest.mark.service

SEED = 20240611
PER_ROUTE = 500
ROUTES = {
    "/api/classify": ("text", "labels", "label"),
    "/api/extract": ("text", "fields", "fields"),
    "/api/generate": ("prompt", "max_new_tokens", "text"),
}
ALPHABETS = [
    "abcxyz ,.;:!?'\"\\/{}[]<>&",
    "财经体育科技合同甲方乙方，。、；！？“”",
    "".join(chr(c) for c in range(0x00, 0x20)) + "\x7f\x85",
    "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u202e\u2028\u2029",
    "".join(chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF)),  # lone surrogates
    "😀👍🏽🇨🇳\U0010ffff\ufffd",
]


def hostile_string(rng: random.Random, long: bool = True) -> str:
    length = rng.choice([0, 1, 2, 5, 30, 200, 2_000, 25_000] if long else [0, 1, 2, 5, 30, 70])
    pool = "".join(rng.sample(ALPHABETS, rng.randint(1, len(ALPHABETS))))
    start = "".join(rng.choices(pool, k=min(length, 300)))
    return (start * (length // max(1, len(start)) + 1))[:length]  # long values repeat a random start


def hostile_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind <= 1:
        return hostile_string(rng, long=depth == 0)
    if kind == 2:
        return rng.choice([0, -1, 1, 5, 2**63, -(2**70), 10**400 // 10**300])
    if kind == 3:
        return rng.choice([0.0, -0.0, 0.5, 1.5, -1e-300, 1e308, 3.14])
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return rng.choice(["", " ", "\n\t", "，，,", "a"])
    if kind in (6, 7):
        return [hostile_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 70] if depth == 0 else [0, 1, 3]))]
    return {hostile_string(rng)[:10]: hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def hostile_body(rng: random.Random, first: str, second: str) -> bytes:
    """Raw request bytes; JSON escapes carry surrogates that UTF-8 could not."""
    kind = rng.random()
    if kind < 0.70:
        body: dict[str, object] = {}
        for name in (first, second, "threshold", "exclusive"):
            if rng.random() < 0.8:
                body[name] = hostile_value(rng)
        if second == "max_new_tokens" and rng.random() < 0.5:
            body[second] = rng.randint(1, 8)
        return json.dumps(body).encode()
    if kind < 0.80:
        return json.dumps(hostile_value(rng)).encode()
    if kind < 0.85:
        return nested(rng.choice([100, 5_000, 100_000]))
    if kind < 0.88:
        return json.dumps({first: {"a": json.loads(nested(400))}, second: "x"}).encode()
    if kind < 0.95:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if kind < 0.98:
        return b'{"' + first.encode() + b'": "' + b"x" * 300_000 + b'"}'  # over the body limit
    return json.dumps({first: "合同" * 10, second: ["甲方", "乙方"]}).encode()  # a good one now and then


@pytest.fixture(scope="module")
def short_answer_server(tmp_path_factory: pytest.TempPathFactory, demo_model_dir) -> Iterator[RunningServer]:
    """Demo weights with short answers: the few generated inputs that are valid stay cheap to run."""
    server = start_server(tmp_path_factory.mktemp("hostile-server"), demo_model_dir,
                          {"SEQGPT_MAX_NEW_TOKENS": "8", "SEQGPT_EXTRACT_MAX_NEW_TOKENS": "8"})
    yield server
    stop_server(server)


@pytest.mark.parametrize("route", list(ROUTES))
def test_hostile_inputs_get_an_answer_and_never_break_the_server(short_answer_server, route):
    first, second, result_key = ROUTES[route]
    rng = random.Random(f"{SEED}{route}")
    request_ids = []
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=short_answer_server.url, timeout=120.0) as http:
        for n in range(PER_ROUTE):
            body = hostile_body(rng, first, second)
            content_type = rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded"])
            response = http.post(route, content=body, headers={"Content-Type": content_type})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 413, 422), f"input {n}: {response.status_code} {response.text}"
            answer = response.json()
            assert ("error" in answer) != (result_key in answer), f"input {n}: {answer}"
            assert answer["request_id"] == response.headers["X-Request-ID"]
            request_ids.append(answer["request_id"])
        good = http.post(route, json={first: "合同已签订，甲方付款。", second: ["甲方"] if first == "text" else 4})
    assert good.status_code == 200 and result_key in good.json()
    logged = set(re.findall(r"\[([0-9a-f]{32})\]", short_answer_server.log_text()))
    missing = [request_id for request_id in request_ids if request_id not in logged]
    assert not missing, f"{len(missing)} request ids not in the log"
    assert statuses.get(422, 0) > PER_ROUTE // 2, statuses  # the generator does produce mostly bad input
