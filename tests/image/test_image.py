"""The Docker image, built and run for real with podman: what an operator of the appliance relies on."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from image_tier import MODEL_DIR, ROOT, TAG, WORKSPACE, Built, Container, build, podman

from webui.service.status import MIN_DRIVER_FOR_CUDA

pytestmark = pytest.mark.image

CLASSIFY = {"text": "小米集团今天发布了新款手机，售价3999元。", "labels": ["财经", "体育", "科技"]}
EXTRACT = {"text": "阿里巴巴在杭州发布了财报。", "fields": ["公司名称", "地点"]}
# Tunable settings come from the settings file or `-e`, so the image must not fix them in its environment.
PATH_VARIABLES = {"SEQGPT_HOME", "SEQGPT_PYTHON", "SEQGPT_WORKSPACE"}


def inspect(tag: str) -> dict:
    return json.loads(podman("image", "inspect", tag).stdout)[0]


def readme_docker_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]


# --- the image itself ---------------------------------------------------------------------------


def test_image_declares_the_workspace_volume_the_port_and_a_healthcheck(image: Built):
    details = inspect(image.tag)

    assert WORKSPACE in details["Config"]["Volumes"]
    assert "7860/tcp" in details["Config"]["ExposedPorts"]
    assert "/health" in " ".join(details["Healthcheck"]["Test"])


def test_image_environment_sets_paths_but_no_tunable_setting(image: Built):
    env = dict(item.split("=", 1) for item in inspect(image.tag)["Config"]["Env"])

    seqgpt = {name for name in env if name.startswith("SEQGPT_")}
    assert seqgpt == PATH_VARIABLES
    assert not {"PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"} & env.keys()


def test_build_ca_bundle_leaves_nothing_in_the_image(image: Built):
    # The build was handed the host's CA bundle as a secret (tests/image/podman.sh): no file in
    # the image may be a copy of it, and nothing may be left where the secret was mounted.
    bundle = Path(os.environ.get("SEQGPT_TEST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
    size = bundle.stat().st_size if bundle.exists() else 0
    proc = podman(
        "run",
        "--rm",
        "--network",
        "none",
        image.tag,
        "sh",
        "-c",
        f"ls -A /run/secrets 2>/dev/null; echo ---; find / -xdev -type f -size {size}c -exec sha256sum {{}} +",
        timeout=300,
    )
    secrets, _, sums = proc.stdout.partition("---\n")

    assert secrets.strip() == ""
    if bundle.exists():
        assert hashlib.sha256(bundle.read_bytes()).hexdigest() not in sums


def test_image_has_ps_and_its_cuda_is_the_one_the_readme_names_with_its_driver(image: Built):
    proc = podman(
        "run",
        "--rm",
        "--network",
        "none",
        image.tag,
        "sh",
        "-c",
        "ps -p 1 -o comm= && python -c 'import torch; print(torch.__version__, torch.version.cuda)'",
    )
    _, torch_version, cuda = proc.stdout.split()
    major = int(cuda.split(".")[0])
    driver_major = MIN_DRIVER_FOR_CUDA[major].split(".")[0]
    docker = readme_docker_section()

    assert torch_version.split("+")[0] in docker
    assert f"CUDA {cuda}" in docker
    assert f"driver {driver_major}" in docker


def test_changing_the_model_revision_reuses_the_apt_and_pip_layers(image: Built):
    output, _ = build(f"{TAG}:revision", "--build-arg", "MODEL_SOURCE=none", "--build-arg", "MODEL_REVISION=other")
    steps = re.split(r"\n(?=\[\d+/\d+\] STEP \d+/\d+: )", output)
    pip_step = next(step for step in steps if "pip install -r requirements.txt" in step.split("\n", 1)[0])
    apt_step = next(step for step in steps if "apt-get install" in step.split("\n", 1)[0])

    assert "Using cache" in apt_step, apt_step[:2000]
    assert "Using cache" in pip_step, pip_step[:2000]
    podman("rmi", f"{TAG}:revision", check=False)


def test_weights_from_a_build_context_are_really_in_the_image_and_readable(image: Built, demo_weights: Path):
    tag = f"{TAG}:local-model"
    build(tag, "--build-arg", "MODEL_SOURCE=none", "--build-context", f"local-model={demo_weights}")
    try:
        proc = podman(
            "run",
            "--rm",
            "--network",
            "none",
            tag,
            "sh",
            "-c",
            f"stat -c '%A %n' {MODEL_DIR}/* && python scripts/download_model.py --check --dest {MODEL_DIR}",
        )
    finally:
        podman("rmi", tag, check=False)

    modes = dict(line.split(" ", 1)[::-1] for line in proc.stdout.splitlines() if line.startswith("-"))
    assert modes[f"{MODEL_DIR}/config.json"].startswith("-rw-r--r--")
    assert modes[f"{MODEL_DIR}/model.safetensors"] == "-rw-r--r--", "weights must be readable by every user"
    assert proc.returncode == 0


# --- a running container: no network at all, demo weights mounted --------------------------------


def test_pid_1_is_supervisord(offline: Container):
    args = offline.exec("ps", "-o", "args=", "-p", "1").stdout

    assert "supervisord" in args


def test_plain_supervisorctl_status_shows_the_app_running(offline: Container):
    status = offline.ctl("status")

    assert re.search(r"^seqgpt560m\s+RUNNING", status, re.M), status


def test_supervisor_says_running_by_the_time_health_first_answers_200(offline: Container):
    assert "RUNNING" in offline.first_status, offline.first_status


def test_supervisord_does_not_warn_about_running_as_root(offline: Container):
    warning = "Supervisor is running as root"
    assert warning not in offline.logs()
    assert warning not in (offline.workspace / "supervisord.log").read_text()


def test_health_classification_and_extraction_answer_without_any_network(offline: Container):
    code, health = offline.http("GET", "/health")
    assert (code, health.get("status")) == (200, "ok"), health
    assert health["is_demo"] is True

    code, label = offline.http("POST", "/api/classify", CLASSIFY)
    assert code == 200, label
    assert label["label"] in CLASSIFY["labels"]

    code, fields = offline.http("POST", "/api/extract", EXTRACT)
    assert code == 200, fields
    assert set(fields["fields"]) == set(EXTRACT["fields"])
    for mentions in fields["fields"].values():
        for mention in mentions:
            assert EXTRACT["text"][mention["start"] : mention["end"]] == mention["text"]


def test_request_id_is_in_the_log_file_and_in_podman_logs(offline: Container):
    code, reply = offline.http("POST", "/api/classify", CLASSIFY)
    assert code == 200, reply
    request_id = reply["request_id"]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and request_id not in offline.logs():
        time.sleep(0.3)
    assert request_id in (offline.workspace / "seqgpt560m.log").read_text()
    assert request_id in offline.logs()
    assert request_id in offline.exec("cat", f"{WORKSPACE}/seqgpt560m.log").stdout


def test_healthcheck_reports_healthy(offline: Container):
    proc = podman("healthcheck", "run", offline.name, check=False)

    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_restart_gives_a_new_pid_and_supervisor_says_running_once_healthy(offline: Container):
    _, before = offline.state()

    offline.ctl("restart", "seqgpt560m")
    status = offline.wait_healthy()
    _, after = offline.state()

    assert "RUNNING" in status, status
    assert after is not None and after != before


def test_restart_applies_a_changed_settings_file(offline: Container):
    four = {"text": CLASSIFY["text"], "labels": ["财经", "体育", "科技", "娱乐"]}
    code, reply = offline.http("POST", "/api/classify", four)
    assert code == 200, reply

    # The operator's way: edit the settings file in the workspace volume, restart the app.
    with (offline.workspace / "seqgpt560m.env").open("a", encoding="utf-8") as out:
        out.write("\nSEQGPT_MAX_LABELS=3\n")
    offline.ctl("restart", "seqgpt560m")
    offline.wait_healthy()

    code, reply = offline.http("POST", "/api/classify", four)
    assert code == 422, reply


def test_killed_app_is_restarted_by_supervisord(offline: Container):
    _, before = offline.state()
    assert before is not None

    offline.exec("kill", "-9", str(before))
    deadline = time.monotonic() + 60
    after = before
    while time.monotonic() < deadline and after in (before, None):
        time.sleep(0.5)
        _, after = offline.state()
    offline.wait_healthy()

    assert after not in (before, None)
    assert offline.http("GET", "/health")[0] == 200
