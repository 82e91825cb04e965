# SPEC Explorer, CPU image: serves the app on port 8501 as a non-root user.
#
#   docker build -t spec-explorer .
#   docker run -p 8501:8501 -v spec-cache:/home/spec/.cache spec-explorer
#
# CUDA: PyPI's torch wheels carry their CUDA libraries, so the same base works on a GPU host:
#   docker build --build-arg TORCH_INDEX=https://pypi.org/simple -t spec-explorer:cuda .
#   docker run --gpus all -p 8501:8501 spec-explorer:cuda
# (device "auto" then uses the GPU for embeddings and the decomposition).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    SPEC_EXPLORER_CACHE=/home/spec/.cache/spec-explorer

WORKDIR /app
COPY requirements.txt .
RUN pip install --extra-index-url "${TORCH_INDEX}" -r requirements.txt

COPY . .
RUN useradd --create-home --uid 1000 spec && chown -R spec:spec /app
USER spec

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]
