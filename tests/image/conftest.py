"""The image tier's fixtures: the image built with podman as a user's `docker build` would, and a running container."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_tier import MODEL_DIR, ROOT, TAG, Built, Container, build, podman, run_container


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """podman is installed and usable, or the tier fails saying why (it never skips)."""
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed, so the image cannot be built and run. As root or in CI, "
            "scripts/test.sh installs it (apt-get install podman buildah runc debootstrap uidmap "
            "fuse-overlayfs slirp4netns); elsewhere install those packages and run as root."
        )
    if os.geteuid() != 0:
        pytest.fail("the image tier runs rootful podman: run it as root (sudo scripts/test.sh -m image)")
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
    if info.returncode != 0:
        pytest.fail(f"podman cannot run here: {info.stderr.strip()[-1500:]}")
    base = podman("base", check=False, timeout=1200)
    if base.returncode != 0:
        pytest.fail(f"could not make the base image with debootstrap:\n{base.stdout[-2000:]}\n{base.stderr[-2000:]}")


@pytest.fixture(scope="session")
def image(podman_ready: None) -> Built:
    """The image without weights (MODEL_SOURCE=none); they are mounted at run time."""
    output, seconds = build(f"{TAG}:none", "--build-arg", "MODEL_SOURCE=none")
    print(f"\nimage build: {seconds:.0f} s", file=sys.stderr)
    return Built(f"{TAG}:none", output, seconds)


@pytest.fixture(scope="session")
def demo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo weights made with the script a user runs."""
    out = tmp_path_factory.mktemp("image-demo") / "demo"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_demo_model.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=ROOT,
    )
    return out


@pytest.fixture(scope="module")
def offline(image: Built, demo_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """A container with no network at all, demo weights mounted read-only, the workspace on the host."""
    workspace = tmp_path_factory.mktemp("workspace")
    container = run_container(
        image.tag, "--network", "none", "-v", f"{demo_weights}:{MODEL_DIR}:ro", workspace=workspace
    )
    try:
        container.first_status = container.wait_healthy()
        yield container
    finally:
        container.remove()
