"""What crosses the replica boundary comes back as the same result, and engine errors keep their type."""

from __future__ import annotations

import json

import pytest

from model_loader.errors import AbandonedError, InvalidInputError, ModelLoadError, ModelNotReadyError, OverloadedError
from model_loader.results import Classification, EngineStatus, Extraction, Generation, Mention
from model_loader.settings import Settings
from model_loader.tasks.options import ExtractRequest, GenerateRequest, SummarizeRequest
from serving.replicas import ClusterStatus, ReplicaInfo, devices_of
from serving.wire import ReplicaError, decode_error, decode_result, encode_error, encode_request, encode_result
from webui.outcomes import outcome_of, response_headers
from webui.service.status import format_status


def through_json(payload: object) -> object:
    return json.loads(json.dumps(payload))


@pytest.mark.parametrize(
    "result",
    [
        Classification(label="财经", scores={"财经": 0.1 + 0.2, "体育": 1 - (0.1 + 0.2)}, pieces=2),
        Extraction(
            fields={"公司名称": [Mention("小米集团", 0, 4, 0.97), Mention("华为", 10, 12, 1 / 3)], "金额": []},
            raw="公司名称: 小米集团\t华为\n金额: None",
            pieces=1,
            dropped={"金额": ["一百元"]},
        ),
        Generation(text="体育", prompt_tokens=12, new_tokens=2, truncated=True),
        EngineStatus(state="ready", device="cpu", dtype="float32", model_dir="/m", is_demo=True, load_seconds=1.5),
    ],
)
def test_a_result_survives_the_trip_unchanged(result: object) -> None:
    assert decode_result(through_json(encode_result(result))) == result


def test_a_call_carries_its_checked_request_field_by_field_as_json() -> None:
    asked = ExtractRequest.checked(Settings(), text="合同", fields="甲方，乙方", threshold=1)
    call, kwargs = encode_request(asked)
    assert call == "extract"
    assert json.loads(json.dumps(kwargs)) == {"text": "合同", "fields": ["甲方", "乙方"], "threshold": 1.0,
                                              "exclusive": False}
    assert ExtractRequest.checked(Settings(), **kwargs) == asked
    assert encode_request(GenerateRequest.checked(Settings(), prompt="p", max_new_tokens=3))[0] == "generate"


def test_a_summary_cannot_cross_to_a_replica() -> None:
    with pytest.raises(TypeError, match="SummarizeRequest"):
        encode_request(SummarizeRequest.checked(Settings(), text="t"))


def test_engine_errors_keep_their_type_and_words() -> None:
    for error in (InvalidInputError("text is empty"), ModelNotReadyError("loading"), ModelLoadError("no model")):
        back = decode_error(through_json(encode_error(error)))
        assert type(back) is type(error) and str(back) == str(error)


def test_a_replicas_refusal_stays_a_503_with_its_retry_after() -> None:
    refusal = OverloadedError("busy: about 64 s of work is queued ahead of this request", retry_after_s=64)
    back = decode_error(through_json(encode_error(refusal)))
    assert type(back) is OverloadedError and back.retry_after_s == 64 and str(back) == str(refusal)
    assert outcome_of(back).status == 503 and response_headers(back) == {"Retry-After": "64"}
    gone = decode_error(through_json(encode_error(AbandonedError("the client went away"))))
    assert type(gone) is AbandonedError


def test_any_other_replica_failure_is_a_replica_error_that_names_it() -> None:
    back = decode_error(through_json(encode_error(KeyError("x"))))
    assert isinstance(back, ReplicaError) and "KeyError" in str(back)
    assert outcome_of(back).status == 500


def replica(name: str, device: str) -> ReplicaInfo:
    return ReplicaInfo(replica_id=name, pid=1, node="n", state="ready", device=device, dtype="float32")


def test_devices_of_counts_each_device() -> None:
    assert devices_of((replica("a", "cpu"), replica("b", "cpu"))) == "cpu"
    assert devices_of((replica("a", "cuda:0"), replica("b", "cuda:0"), replica("c", "cpu"))) == "cuda:0 ×2, cpu"


def cluster_status(states: dict[str, int]) -> ClusterStatus:
    return ClusterStatus(state="ready", device="cpu", dtype="float32", model_dir="/m", target_replicas=2,
                         deployment_health="HEALTHY", replica_states=states, replicas=(replica("a", "cpu"),))


def test_status_bar_shows_running_replicas_and_their_device() -> None:
    view = format_status(cluster_status({"RUNNING": 2}), None)
    assert view.level == "ok"
    assert "副本 Replicas: 2/2 运行 running" in view.text and "设备 Device: cpu" in view.text


def test_status_bar_warns_while_a_replica_is_missing() -> None:
    view = format_status(cluster_status({"RUNNING": 1, "STARTING": 1}), None)
    assert view.level == "warn"
    assert "副本 Replicas: 1/2 运行 running (1 starting)" in view.text
