#!/usr/bin/env bash
# The GPU validation, in one call on a machine with a CUDA GPU and CuPy (about 5 minutes on an H100):
#
#   bash benchmarks/gpu_check.sh            # from the repository root; figures under $OUT or ./gpu-check
#
# 1. the card, CuPy and NumPy versions                               -> card.txt
# 2. pytest: every gpu-marked test (parity with the CPU path), the CPU-side tests of the GPU logic,
#    and test_mfcc_cli                                               -> pytest.log, pytest.xml
# 3. acam bench gpu-check (benchmarks/gpu_check.py): parity at odd sizes, whole files, MFCC, CGEMM peak, the
#    batched GEMM at the workload's shape, process() of 256 frames, pageable vs pinned copies, copy
#    behind compute, end to end on 30 s (cube files, and MFCC cubes), bf16 when there is one
#                                                                    -> gpu_check.json, gpu_check.md
#
# Nothing is installed: the folder is imported as the package `acam` through a link, so the machine's
# own NumPy/CuPy/PyTorch are used.  Wheels of missing packages (pyroomacoustics for the training test,
# which builds the tiny dataset) may be carried in .whl/ and are then unpacked to /tmp/site.
# Exit status: non-zero when a test or a parity check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
pkg=$(mktemp -d)
ln -s "$PWD" "$pkg/acam"
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader
    $PY -c "import cupy, numpy, sys; print('python', sys.version.split()[0], 'cupy', cupy.__version__, 'numpy', numpy.__version__)"
} 2>&1 | tee "$OUT/card.txt"
export ACAM_CACHE
ACAM_CACHE=$(mktemp -d)
status=0
timeout 200 $PY -m pytest -q -p no:cacheprovider --continue-on-collection-errors --junitxml="$OUT/pytest.xml" \
    -m gpu tests 2>&1 | tee "$OUT/pytest.log" || status=1
timeout 60 $PY -m pytest -q -p no:cacheprovider tests/test_gpu_logic.py tests/test_dataset.py::test_mfcc_cli \
    2>&1 | tee -a "$OUT/pytest.log" || status=1
timeout 300 $PY -m acam.cli bench gpu-check -o "$OUT" || status=1
exit $status
