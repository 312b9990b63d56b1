# syntax=docker/dockerfile:1.7
# SeqGPT-560M appliance: supervisord (PID 1) keeps the Gradio app alive, the weights are
# baked in, every request is logged to /root/workspace/seqgpt560m.log.
#
#   docker build -t seqgpt560m .
#   docker run --gpus all -p 7860:7860 seqgpt560m
#
# Build arguments:
#   MODEL_SOURCE        hf (default) | modelscope | none (no weights in the image: mount them
#                       at /root/models/seqgpt-560m when running)
#   MODEL_REVISION      branch, tag or commit on the hub (default: the hub's default branch)
#   INSTALL_FLASH_ATTN  true to add flash-attn (compiles unless a matching wheel exists, so it
#                       wants a -devel CUDA_IMAGE with nvcc)
#   CUDA_IMAGE          base image; its CUDA must be one the host's driver supports
# Weights from a local folder instead of a hub (no network needed for them):
#   docker build --build-context local-model=/path/to/SeqGPT-560M -t seqgpt560m .

ARG CUDA_IMAGE=nvidia/cuda:12.8.0-runtime-ubuntu24.04

# Empty unless --build-context local-model=DIR replaces it with a folder of weights.
FROM scratch AS local-model

FROM ${CUDA_IMAGE}

ARG MODEL_SOURCE=hf
ARG MODEL_REVISION=
ARG INSTALL_FLASH_ATTN=false
ARG FLASH_ATTN_VERSION=2.8.3

# Every variable supervisord.conf expands must be set, or supervisord will not start.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    PATH=/opt/venv/bin:$PATH \
    SEQGPT_HOME=/opt/seqgpt560m \
    SEQGPT_PYTHON=/opt/venv/bin/python \
    SEQGPT_WORKSPACE=/root/workspace \
    SEQGPT_MODEL_DIR=/root/models/seqgpt-560m \
    SEQGPT_HOST=0.0.0.0 \
    SEQGPT_PORT=7860

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Distribution packages float with the base image's security updates on purpose.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/seqgpt560m

# Dependencies before code, so that editing the app does not reinstall torch.
# requirements.txt pins torch without a local tag: on PyPI for x86_64 that is the CUDA build.
COPY requirements.txt ./
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements.txt \
    && if [ "$INSTALL_FLASH_ATTN" = true ]; then \
           pip install --no-cache-dir --no-build-isolation "flash-attn==${FLASH_ATTN_VERSION}"; \
       fi

# Weights before code too: a 1.1 GB layer that only changes with the download script.
COPY scripts/download_model.py scripts/download_model.py
RUN --mount=type=bind,from=local-model,target=/mnt/local-model \
    if [ -f /mnt/local-model/config.json ]; then \
        mkdir -p "$SEQGPT_MODEL_DIR" \
        && cp -a /mnt/local-model/. "$SEQGPT_MODEL_DIR"/ \
        && python scripts/download_model.py --source none --dest "$SEQGPT_MODEL_DIR"; \
    elif [ "$MODEL_SOURCE" != none ]; then \
        python scripts/download_model.py --source "$MODEL_SOURCE" --dest "$SEQGPT_MODEL_DIR" \
            ${MODEL_REVISION:+--revision "$MODEL_REVISION"} --timeout 15; \
    fi

COPY model_loader/ model_loader/
COPY webui/ webui/
COPY scripts/ scripts/
# Installed where supervisorctl looks by default, so plain `supervisorctl status` works.
COPY supervisor/supervisord.conf /etc/supervisor/supervisord.conf
RUN mkdir -p "$SEQGPT_WORKSPACE"

EXPOSE 7860

# /health is 200 only once the model is loaded and a tiny forward pass works; loading
# takes a while on first start, hence the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS \"http://127.0.0.1:${SEQGPT_PORT}/health\" >/dev/null || exit 1"]

# supervisorctl stop sends TERM and waits stopwaitsecs=8, under docker stop's default 10 s.
STOPSIGNAL SIGTERM
CMD ["supervisord", "-n", "-c", "/etc/supervisor/supervisord.conf"]
