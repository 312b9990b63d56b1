"""Every failure raises the engine's own error type with a message that says what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from model_loader import (
    Engine,
    InvalidInputError,
    ModelLoadError,
    ModelNotReadyError,
    SeqGPTError,
    Settings,
    SettingsError,
)
from model_loader.model.cpu_dtype import cpu_dtype, onednn_half_dtypes, processor_flags
from model_loader.model.loading import resolve_device, resolve_dtype


def copy_model(demo_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(demo_dir, target)
    return target


def failed_load(model_dir: Path) -> tuple[Engine, ModelLoadError]:
    engine = Engine(Settings(model_dir=model_dir))
    with pytest.raises(ModelLoadError) as caught:
        engine.load()
    return engine, caught.value


# ---- loading ---------------------------------------------------------------------------------


def test_missing_model_dir_fails_to_load_naming_the_path_and_the_download_script(tmp_path):
    missing = tmp_path / "seqgpt-560m"
    engine, error = failed_load(missing)
    assert str(missing) in str(error)
    assert "download_model.py" in str(error) and "SEQGPT_MODEL_DIR" in str(error)
    status = engine.status
    assert status.state == "error" and not status.ready
    assert status.error == str(error)


def test_engine_that_failed_to_load_refuses_requests_with_the_reason(tmp_path):
    engine, error = failed_load(tmp_path / "nowhere")
    for call in (
        lambda: engine.classify("文本", ["财经"]),
        lambda: engine.extract("文本", ["人名"]),
        lambda: engine.generate("输入: 文本\n输出:"),
        engine.health_check,
    ):
        with pytest.raises(ModelNotReadyError) as caught:
            call()
        assert str(error) in str(caught.value) or "error" in str(caught.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.write_bytes(b"\x00junk" * 100),
        lambda f: f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]),
        lambda f: f.write_bytes(b""),
        lambda f: f.write_bytes(f.read_bytes()[:8] + b"{not json" + f.read_bytes()[17:]),
    ],
    ids=["junk-bytes", "truncated-half", "empty", "broken-header"],
)
def test_corrupt_weight_file_fails_to_load_naming_the_file(demo_dir, tmp_path, damage):
    model_dir = copy_model(demo_dir, tmp_path)
    weights = model_dir / "model.safetensors"
    damage(weights)
    engine, error = failed_load(model_dir)
    assert str(weights) in str(error)
    assert "download" in str(error)
    assert engine.status.state == "error" and engine.status.error == str(error)


def test_weights_for_a_different_shape_fail_to_load(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["n_layer"] = config["n_layer"] + 1
    config_path.write_text(json.dumps(config))
    _, error = failed_load(model_dir)
    assert "model.safetensors" in str(error)


def test_non_bloom_model_fails_to_load_saying_seqgpt_is_bloom(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["model_type"] = "gpt2"
    config_path.write_text(json.dumps(config))
    _, error = failed_load(model_dir)
    assert "'gpt2'" in str(error) and "BLOOM" in str(error)
    assert "download_model.py" in str(error)


def test_missing_config_fails_to_load(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    (model_dir / "config.json").unlink()
    _, error = failed_load(model_dir)
    assert "config.json" in str(error) and "download_model.py" in str(error)


def test_invalid_config_json_fails_to_load(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    (model_dir / "config.json").write_text("{ this is not json")
    _, error = failed_load(model_dir)
    assert "config.json" in str(error) and "not valid JSON" in str(error)


def test_missing_weight_file_fails_to_load(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    (model_dir / "model.safetensors").unlink()
    _, error = failed_load(model_dir)
    assert "no weights" in str(error) and "download_model.py" in str(error)


def test_missing_tokenizer_fails_to_load(demo_dir, tmp_path):
    model_dir = copy_model(demo_dir, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model_dir / name).unlink()
    _, error = failed_load(model_dir)
    assert "tokenizer" in str(error) and "download_model.py" in str(error)


def test_a_failed_load_can_be_retried_once_the_model_is_there(demo_dir, tmp_path):
    model_dir = tmp_path / "later"
    engine = Engine(Settings(model_dir=model_dir, dtype="float32"))
    with pytest.raises(ModelLoadError):
        engine.load()
    shutil.copytree(demo_dir, model_dir)
    engine.load()
    try:
        assert engine.status.ready and engine.status.error is None
        assert engine.classify("温格的球队。", ["体育", "财经"]).label in ("体育", "财经")
    finally:
        engine.close()


def test_cuda_requested_without_a_cuda_device_says_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="SEQGPT_DEVICE=cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_an_explicit_dtype_is_kept_on_either_device():
    for dtype in ("float32", "bfloat16", "float16"):
        assert resolve_dtype(dtype, "cpu") == dtype
        assert resolve_dtype(dtype, "cuda") == dtype


def test_auto_dtype_on_cpu_follows_the_processor_flags_and_what_onednn_runs():
    assert resolve_dtype("auto", "cpu") == cpu_dtype(processor_flags(), onednn_half_dtypes())


@pytest.mark.parametrize(
    ("flags", "dtype"),
    [
        ("fpu sse2 avx2 fma", "float32"),
        ("avx512f avx512_bf16 avx512_vnni", "bfloat16"),  # bf16 only (AMD Zen 4, Cooper Lake)
        ("avx512f avx512_bf16 avx512_fp16", "float16"),  # both, without AMX: fp16 is the faster
        ("avx512_bf16 avx512_fp16 amx_bf16 amx_tile", "bfloat16"),  # AMX multiplies bf16 only
        ("avx512_bf16 avx512_fp16 amx_bf16 amx_fp16 amx_tile", "float16"),  # AMX does both
        ("avx512_fp16x avx512_bf16y", "float32"),  # whole flags only
    ],
)
def test_cpu_dtype_is_chosen_from_the_processor_flags(flags, dtype):
    assert cpu_dtype(set(flags.split())) == dtype


def test_float16_on_cpu_loads_and_answers_packed_or_plain(demo_dir):
    engine = Engine(Settings(model_dir=demo_dir, device="cpu", dtype="float16"))
    engine.load()
    try:
        assert engine.status.dtype == "float16"
        assert engine.model.loaded.weights.blocks[0].qkv.weight.dtype == torch.float16
        result = engine.classify("小米集团今天发布了新款手机，售价3999元。", ["财经", "体育", "科技"])
        assert sum(result.scores.values()) == pytest.approx(1.0)
    finally:
        engine.close()


# ---- calls before load -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.classify("温格的球队。", ["体育"]),
        lambda e: e.extract("温格的球队。", ["人名"]),
        lambda e: e.generate("输入: 温格的球队。\n分类: 体育\n输出:"),
        lambda e: e.health_check(),
    ],
    ids=["classify", "extract", "generate", "health_check"],
)
def test_calls_before_load_raise_model_not_ready(demo_dir, call):
    engine = Engine(Settings(model_dir=demo_dir))
    with pytest.raises(ModelNotReadyError, match="not ready"):
        call(engine)


# ---- bad requests on a loaded engine ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels", "hint"),
    [
        ("", ["财经"], "empty"),
        ("   \n", ["财经"], "empty"),
        ("温格的球队。", [], "at least one"),
        ("温格的球队。", "", "at least one"),
        ("温格的球队。", [f"标签{i}" for i in range(500)], "SEQGPT_MAX_LABELS"),
        ("温格的球队。", ["财经", "长" * 1_000], "short name"),
        (123, ["财经"], "must be a string"),
        (None, ["财经"], "must be a string"),
        ("温格的球队。", 5, "财经，体育"),
        ("温格的球队。", ["财经", 5], "must be strings"),
        ("字" * 20_001, ["财经"], "SEQGPT_MAX_TEXT_CHARS"),
    ],
    ids=[
        "empty-text",
        "blank-text",
        "no-labels",
        "empty-label-string",
        "500-labels",
        "1000-char-label",
        "int-text",
        "none-text",
        "int-labels",
        "list-with-int",
        "too-long-text",
    ],
)
@pytest.mark.parametrize("task", ["classify", "extract"])
def test_bad_requests_raise_invalid_input_saying_how_to_fix_it(engine, task, text, labels, hint):
    with pytest.raises(InvalidInputError) as caught:
        getattr(engine, task)(text, labels)
    assert hint in str(caught.value)
    assert engine.status.ready, "a bad request does not harm the engine"


def test_labels_too_long_for_the_model_window_are_refused_naming_labels_or_fields(engine):
    labels = [f"{i:02d}" + "很长的标签名称" * 8 for i in range(64)]
    assert all(len(label) <= engine.settings.max_label_chars for label in labels)
    for call, what in ((engine.classify, "labels"), (engine.extract, "fields")):
        with pytest.raises(InvalidInputError, match=f"the {what} take .* fewer or shorter {what}"):
            call("温格的球队。", labels)


def test_engine_keeps_serving_after_bad_requests(engine):
    for bad in (lambda: engine.classify("", ["财经"]), lambda: engine.generate("x", 0)):
        with pytest.raises(InvalidInputError):
            bad()
    assert engine.classify("温格的球队。", ["体育", "财经"]).label in ("体育", "财经")
    engine.health_check()


@pytest.mark.parametrize("max_new_tokens", [0, -1, 257, 10_000, True, False, 1.5, "10"])
def test_generate_rejects_a_bad_max_new_tokens(engine, max_new_tokens):
    with pytest.raises(InvalidInputError) as caught:
        engine.generate("输入: 温格的球队。\n分类: 体育\n输出:", max_new_tokens)
    assert "max_new_tokens" in str(caught.value) and str(engine.settings.max_new_tokens) in str(caught.value)


def test_generate_accepts_the_limits(engine):
    prompt = "输入: 温格的球队。\n分类: 体育\n输出:"
    assert engine.generate(prompt, 1).new_tokens == 1
    assert engine.generate(prompt, engine.settings.max_new_tokens).new_tokens >= 1


@pytest.mark.parametrize("prompt", ["", "  ", None, 42])
def test_generate_rejects_an_empty_or_non_string_prompt(engine, prompt):
    with pytest.raises(InvalidInputError, match="prompt"):
        engine.generate(prompt, 8)


def test_generate_rejects_a_prompt_longer_than_the_model_window(engine):
    prompt = "客户反馈：订单号20231105的快递三天没有更新物流信息。" * 250
    assert len(prompt) <= engine.settings.max_prompt_chars
    with pytest.raises(InvalidInputError, match="shorten it"):
        engine.generate(prompt, 8)


@pytest.mark.parametrize("threshold", [-0.01, 1.01, 2, float("nan"), float("inf"), "0.5", None])
def test_extract_rejects_a_threshold_outside_zero_to_one(engine, threshold):
    with pytest.raises(InvalidInputError, match="threshold"):
        engine.extract("温格的球队。", ["人名"], threshold=threshold)


def test_extract_rejects_a_boolean_threshold_like_generate_rejects_a_boolean_length(engine):
    """``True`` is a wrong type (SPEC §3), not the number 1: a client bug should be told, not served."""
    with pytest.raises(InvalidInputError, match="threshold"):
        engine.extract("温格的球队。", ["人名"], threshold=True)


@pytest.mark.parametrize("threshold", [0, 0.0, 0.5, 1, 1.0])
def test_extract_accepts_a_threshold_within_zero_to_one(engine, threshold):
    assert list(engine.extract("温格的球队。", ["人名"], threshold=threshold).fields) == ["人名"]


# ---- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "hint"),
    [
        ({"SEQGPT_DEVICE": "tpu"}, "auto, cpu, cuda"),
        ({"SEQGPT_DTYPE": "int8"}, "float32"),
        ({"SEQGPT_DECODING": "beam"}, "official"),
        ({"SEQGPT_MAX_LABELS": "ten"}, "whole number"),
        ({"SEQGPT_MAX_TEXT_CHARS": "1.5"}, "whole number"),
        ({"SEQGPT_MAX_BATCH_SIZE": "-2"}, "must not be negative"),
        ({"SEQGPT_WINDOW_TOKENS": "64"}, "at least 128"),
    ],
)
def test_settings_from_env_rejects_bad_values_naming_the_variable(env, hint):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert hint in str(caught.value)
    assert next(iter(env)) in str(caught.value)
    assert not isinstance(caught.value, InvalidInputError), "a bad setting is not a bad request"


def test_an_engine_with_a_bad_setting_reports_it_in_its_status_and_refuses_to_load():
    engine = Engine.from_env({"SEQGPT_DEVICE": "gpu"})
    status = engine.status
    assert status.state == "error" and not status.ready
    assert "SEQGPT_DEVICE='gpu'" in status.error and "auto, cpu, cuda" in status.error
    with pytest.raises(SettingsError, match="SEQGPT_DEVICE"):
        engine.load()
    assert engine.status.state == "error"
    with pytest.raises(ModelNotReadyError, match="SEQGPT_DEVICE"):
        engine.classify("温格的球队。", ["体育"])


def test_settings_from_env_reads_every_variable_and_ignores_blank_ones(tmp_path):
    settings = Settings.from_env(
        {
            "SEQGPT_MODEL_DIR": str(tmp_path),
            "SEQGPT_DEVICE": " CPU ",
            "SEQGPT_DTYPE": "float32",
            "SEQGPT_DECODING": "official",
            "SEQGPT_MAX_LABELS": "10",
            "SEQGPT_OVERLAP_CHARS": "  ",
            "UNRELATED": "x",
        }
    )
    assert settings.model_dir == tmp_path
    assert settings.device == "cpu" and settings.dtype == "float32" and settings.decoding == "official"
    assert settings.max_labels == 10
    assert settings.overlap_chars == Settings().overlap_chars


def test_settings_defaults_are_the_appliance_s():
    settings = Settings.from_env({})
    assert settings.model_dir == Path("/root/models/seqgpt-560m")
    assert settings.device == "auto" and settings.dtype == "auto" and settings.decoding == "fast"
    assert settings.window_tokens == 1024


def test_engine_errors_share_one_base_class():
    for error in (InvalidInputError, ModelLoadError, ModelNotReadyError, SettingsError):
        assert issubclass(error, SeqGPTError)


def test_engine_errors_cross_a_process_boundary_intact():
    """A remote engine raises them on the caller's side: pickling must keep type and message."""
    import pickle

    for error in (InvalidInputError, ModelLoadError, ModelNotReadyError, SettingsError):
        copy = pickle.loads(pickle.dumps(error("标签过多 · too many labels")))
        assert type(copy) is error and str(copy) == "标签过多 · too many labels"
