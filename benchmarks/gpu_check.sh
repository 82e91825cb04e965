#!/usr/bin/env bash
# The one prepared GPU check (under 8 minutes on one GPU): the GPU tests (CUDA against the CPU
# for every route, kernel and dtype; SPEC-align on CUDA), then the figures for the README.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   SMALL=1 bash benchmarks/gpu_check.sh    # a dry run with tiny sizes (any machine)
#
# Python: $PYTHON, else .venv/bin/python, else python3 (the GPU image's python holds torch; a
# package it lacks, e.g. open_clip_torch or pytest, can travel as wheels: see the device notes).
# Each step has its own time limit, so one slow step cannot eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

status=0
echo "== GPU tests"
if "$PY" -c "import pytest" 2>/dev/null; then
  timeout 180 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py tests/test_scalable.py || status=1
else
  echo "skipped: pytest is not installed"
fi
echo "== figures"
timeout 330 "$PY" benchmarks/bench_gpu.py ${SMALL:+--small} || status=1
exit $status
