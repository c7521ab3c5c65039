# The tool-server image, `toolbridge:latest` in `toolbridge deploy kubernetes` (docs/deploy.md):
#   docker build -t toolbridge:latest .        (from the repository root)
# It runs `toolbridge up`; every setting comes from TOOLBRIDGE_* variables (the ConfigMap and Secret on
# Kubernetes). The model-host image is another one: `toolbridge bento build-host`, then `bentoml containerize`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# The versions CI tests (constraints.txt); the client is a distribution of its own that the server requires.
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY client/ client/
COPY registry_sync/ registry_sync/
COPY bridge/ bridge/
COPY tool_server/ tool_server/
RUN pip install -c constraints.txt ./client . && rm -rf /src

# A numeric user, so Kubernetes' runAsNonRoot can check it; it owns the state dir (logs; keys and audit
# live in PostgreSQL when TOOLBRIDGE_DATABASE_URL is set) and a home for MLflow's and BentoML's caches.
RUN useradd --uid 10001 --create-home --home-dir /home/toolbridge toolbridge \
    && install -d -o 10001 -g 10001 /var/lib/toolbridge
USER 10001:10001
WORKDIR /var/lib/toolbridge
ENV HOME=/home/toolbridge TOOLBRIDGE_HOST=0.0.0.0 TOOLBRIDGE_PORT=8000 TOOLBRIDGE_STATE_DIR=/var/lib/toolbridge

EXPOSE 8000
ENTRYPOINT ["toolbridge"]
CMD ["up"]
