# SeqGPT-560M appliance: supervisord (PID 1) keeps the Gradio app alive, the weights are
# baked in, every request is logged to /root/workspace/seqgpt560m.log.
#
#   docker build -t seqgpt560m .
#   docker run -d --name seqgpt560m --gpus all -p 7860:7860 -v seqgpt560m-workspace:/root/workspace seqgpt560m
#
# CUDA: the image has no CUDA toolkit of its own. torch's pip wheels bring the CUDA runtime
# and cuDNN, and the host's NVIDIA driver comes in at run time (--gpus all). So the CUDA the
# image runs is torch's: torch==2.13.0 from PyPI on Linux x86_64 is the CUDA 13.0 build, which
# needs an NVIDIA driver 580 or newer. With an older driver, build torch for an older CUDA
# (TORCH_INDEX_URL) or run on the CPU; the status bar and /health say when the driver is too old.
#
# Build arguments (each declared just before the step that uses it, so that changing one
# rebuilds only from there on):
#   BASE_IMAGE          the distribution underneath (default debian:bookworm-slim); it needs
#                       python3 and apt, nothing CUDA
#   TORCH_INDEX_URL     pip index for torch alone (default: PyPI, i.e. CUDA 13.0 as above), e.g.
#                       https://download.pytorch.org/whl/cpu for a CPU-only image
#   INSTALL_FLASH_ATTN  true to add flash-attn (it compiles unless a matching wheel exists, so it
#                       wants a BASE_IMAGE with nvcc for torch's CUDA)
#   FLASH_ATTN_VERSION  flash-attn version (2.8.3)
#   MODEL_SOURCE        hf (default) | modelscope | none (no weights in the image: mount them
#                       at /root/models/seqgpt-560m when running)
#   MODEL_REVISION      branch, tag or commit on the hub (default: the hub's default branch)
# Weights from a local folder instead of a hub (no network needed for them):
#   docker build --build-context local-model=/path/to/SeqGPT-560M -t seqgpt560m .
# Behind a proxy that re-signs HTTPS, hand pip your CA bundle as a build secret; it is mounted
# for the steps that download and is not stored in any layer:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t seqgpt560m .

ARG BASE_IMAGE=debian:bookworm-slim

# Empty unless --build-context local-model=DIR replaces it with a folder of weights. It is
# copied with COPY (keyed on the files' content), never bind-mounted into a RUN, because a
# builder may key a RUN's cache without the content of what it mounts and reuse a layer
# built without the weights.
FROM scratch AS local-model

FROM ${BASE_IMAGE}

# Paths only: supervisord.conf expands the first three. Every tunable SEQGPT_* stays out of
# the image's environment, so /root/workspace/seqgpt560m.env and `docker run -e` decide it.
# NVIDIA_* tell the NVIDIA container runtime what to mount; a CUDA base image would set them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    PATH=/opt/venv/bin:$PATH \
    SEQGPT_HOME=/opt/seqgpt560m \
    SEQGPT_PYTHON=/opt/venv/bin/python \
    SEQGPT_WORKSPACE=/root/workspace \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Distribution packages float with the base image's security updates on purpose.
# procps: `ps` and `top` for whoever debugs inside the container. fonts-wqy-microhei: the
# evaluation charts label their axes in Chinese.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates curl procps fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/seqgpt560m

# Dependencies before code and weights, so that editing the app does not reinstall torch.
# With the `ca` secret present, pip trusts that bundle for this step only.
ARG TORCH_INDEX_URL=
ARG INSTALL_FLASH_ATTN=false
ARG FLASH_ATTN_VERSION=2.8.3
# true: Ray Serve too (requirements-cluster.txt), so the image can be a head or worker node.
ARG INSTALL_CLUSTER=false
COPY requirements.txt requirements-cluster.txt ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /opt/venv \
    && if [ -n "$TORCH_INDEX_URL" ]; then \
           pip install --index-url "$TORCH_INDEX_URL" "$(grep -E '^torch==' requirements.txt)"; \
       fi \
    && pip install -r requirements.txt \
    && if [ "$INSTALL_FLASH_ATTN" = true ]; then \
           pip install --no-build-isolation "flash-attn==${FLASH_ATTN_VERSION}"; \
       fi \
    && if [ "$INSTALL_CLUSTER" = true ]; then pip install -r requirements-cluster.txt; fi

# Weights before code too: a 1.1 GB layer that only changes with the weights or the download script.
ARG MODEL_SOURCE=hf
ARG MODEL_REVISION=
COPY scripts/download_model.py scripts/download_model.py
COPY --from=local-model . /root/models/seqgpt-560m/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca; fi \
    && if [ -f /root/models/seqgpt-560m/config.json ]; then \
        python scripts/download_model.py --source none --dest /root/models/seqgpt-560m; \
    elif [ "$MODEL_SOURCE" != none ]; then \
        python scripts/download_model.py --source "$MODEL_SOURCE" --dest /root/models/seqgpt-560m \
            ${MODEL_REVISION:+--revision "$MODEL_REVISION"} --timeout 15; \
    fi
# GTE-Chinese-Large for the knowledge base, from where SeqGPT came unless GTE_SOURCE says otherwise
# (none: not in the image). It is the second model: a build that cannot fetch it says so loudly and
# goes on, and the app then runs the knowledge base on demo embedding weights, with a banner, until
# GTE is mounted at /root/models/gte-large-zh.
ARG GTE_SOURCE=${MODEL_SOURCE}
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca REQUESTS_CA_BUNDLE=/run/secrets/ca; fi \
    && if [ "$GTE_SOURCE" != none ]; then \
        python scripts/download_model.py --model gte --source "$GTE_SOURCE" --dest /root/models/gte-large-zh \
            --timeout 15 \
        || echo "!! GTE-Chinese-Large was not fetched: the knowledge base will use demo embedding weights" >&2; \
    fi

COPY model_loader/ model_loader/
COPY evaluation/ evaluation/
COPY webui/ webui/
COPY serving/ serving/
COPY scripts/ scripts/
COPY supervisor/ supervisor/
# Installed where supervisorctl looks by default, so plain `supervisorctl status` works: the
# appliance's config plus what only a container wants (the app log echoed to `docker logs`).
# One file, because supervisorctl does not follow [include].
# The request log, supervisord's log and the settings file live in /root/workspace: a volume,
# so that they outlive the container (docker run -v seqgpt560m-workspace:/root/workspace).
RUN mkdir -p /etc/supervisor /root/workspace \
    && cat supervisor/supervisord.conf supervisor/container.conf >/etc/supervisor/supervisord.conf
VOLUME ["/root/workspace"]

EXPOSE 7860

# /health is 200 only once the model is loaded and a tiny forward pass works; loading
# takes a while on first start, hence the start period.
# The port is the app's: $SEQGPT_PORT, else the settings file's line in the workspace, else 7860.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["/opt/seqgpt560m/scripts/healthcheck.sh"]

# supervisorctl stop sends TERM and waits stopwaitsecs=8, under docker stop's default 10 s.
# -u root says that root is meant (the container's only user), which silences supervisord's
# warning about running as root without a user set.
STOPSIGNAL SIGTERM
CMD ["supervisord", "-n", "-u", "root", "-c", "/etc/supervisor/supervisord.conf"]
