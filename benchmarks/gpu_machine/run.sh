#!/usr/bin/env bash
# The GPU check on the offline GPU machine (see ../shared/notes/gpu-offline-install.md; prepare.sh makes .gpu/):
# Runs as .gpu/run.sh (prepare.sh copies it there): installs the carried wheels into /tmp/site, runs the gpu tests,
# then benchmarks/gpu.py; logs and JSON under $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
exec > >(tee -a "$OUT/run.log") 2>&1
echo "== $(date -u +%FT%TZ) $(hostname) python $(python3 -V 2>&1)"
nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv || true
start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl \
  2>&1 | grep -v "WARNING: Target directory" | tail -5
echo "== installed in $(( $(date +%s) - start )) s"
export PYTHONPATH=/tmp/site:$PWD:$PWD/.gpu/stubs PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 MPLBACKEND=Agg
export PYTHONWARNINGS=ignore::FutureWarning,ignore::DeprecationWarning,ignore::SyntaxWarning
python3 -c "import torch, torchvision, astrocyte_lab.modules.anomaly.trainer as t; print('torch', torch.__version__, \
  'tv', torchvision.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== gpu tests"
  timeout 120 python3 -m pytest -m gpu tests/gpu -x -q -p no:cacheprovider -W ignore::DeprecationWarning \
    > "$OUT/pytest-gpu.log" 2>&1
  echo "pytest rc=$?"; tail -15 "$OUT/pytest-gpu.log"
fi
echo "== benchmark"
timeout 320 python3 benchmarks/gpu.py --out "$OUT/gpu.json" --budget ${BUDGET:-290} --workdir /tmp/astro-gpu ${BENCH_ARGS:-} \
  > "$OUT/benchmark.log" 2>&1
echo "benchmark rc=$?"; tail -40 "$OUT/benchmark.log"
echo "== done in $(( $(date +%s) - start )) s"
