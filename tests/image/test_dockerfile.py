"""The Dockerfile read as text: what must hold before any build (the build itself is in test_image.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
LINES = DOCKERFILE.splitlines()


def line_of(pattern: str) -> int:
    return next(number for number, line in enumerate(LINES) if re.search(pattern, line))


def test_no_syntax_directive_that_would_fetch_a_frontend_from_a_registry():
    directives = [line for line in LINES if re.match(r"#\s*syntax\s*=", line, re.I)]

    assert directives == []


def test_model_arguments_are_declared_after_the_dependency_layers():
    # A build argument is part of every later RUN's cache key: declared before pip, a new
    # MODEL_REVISION would reinstall everything.
    pip = line_of(r"pip install -r requirements\.txt")
    apt = line_of(r"apt-get install")
    for name in ("MODEL_SOURCE", "MODEL_REVISION"):
        assert line_of(rf"^ARG {name}\b") > pip, name
    for name in ("TORCH_INDEX_URL", "INSTALL_FLASH_ATTN", "FLASH_ATTN_VERSION"):
        assert apt < line_of(rf"^ARG {name}\b") < pip, name


def test_local_model_weights_are_copied_not_bind_mounted():
    assert re.search(r"^COPY --from=local-model \. /root/models/seqgpt-560m/$", DOCKERFILE, re.M)
    assert "from=local-model" not in DOCKERFILE.replace("COPY --from=local-model", "")


def test_ca_bundle_reaches_the_build_only_as_a_secret():
    assert "--mount=type=secret,id=ca" in DOCKERFILE
    assert not re.search(r"^(ENV|COPY|ADD)\b.*(PIP_CERT|ca-certificates\.crt|SSL_CERT_FILE)", DOCKERFILE, re.M)


def test_podman_script_passes_shellcheck():
    shellcheck = Path(sys.executable).parent / "shellcheck"
    proc = subprocess.run(
        [str(shellcheck), str(ROOT / "tests" / "image" / "podman.sh")], capture_output=True, text=True, timeout=120
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
