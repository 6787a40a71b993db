#!/usr/bin/env bash
# GPU check of the CUDA backend: builds flowhmc with the cargo feature `cuda`, runs the tests
# of tests/cuda.rs (on a machine with a driver the BLAS kernels and the CG solves, f64, f32,
# mixed and multi-shift, full and even/odd, run on the GPU against the CPU; the force, MD and
# trajectory tests run on the emulation everywhere) and the GPU benchmarks (`flowhmc bench
# --device cuda`, whose trajectories print the device's and the CPU's dH side by side), and
# prints one table. About 3-5 minutes on an H100 once the crates are built.
#
# Needs: an NVIDIA GPU with its driver (libcuda), and NVRTC: libnvrtc.so.12 on the loader's
# path, or the PyPI wheel nvidia-cuda-nvrtc-cu12, which this script installs into target/nvrtc
# when it is missing and pip can reach PyPI. NVRTC 12.9 writes PTX 8.8, which needs a driver of
# the CUDA 12.9 generation (575 or newer).
#
# Usage: bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

nvrtc_dir=target/nvrtc
wheel_lib="$nvrtc_dir/nvidia/cuda_nvrtc/lib"
system_libs=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true) | grep 'libnvrtc\.so\.12' || true)
if [ -z "$system_libs" ] && [ ! -e "$wheel_lib/libnvrtc.so.12" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$nvrtc_dir" nvidia-cuda-nvrtc-cu12==12.9.86 \
        || echo "gpu-check: NVRTC is missing and could not be installed; the device tests will say so"
fi
# the wheel only where the system has no NVRTC (the system's matches its driver)
if [ -z "$system_libs" ] && [ -e "$wheel_lib/libnvrtc.so.12" ]; then
    export LD_LIBRARY_PATH="$PWD/$wheel_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export FLOWHMC_REQUIRE_NVRTC=1

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
cargo build --release --features cuda
tests=target/gpu-check-tests.log
bench=target/gpu-check-bench.log
set +e
cargo test --release --features cuda --test cuda -- --show-output 2>&1 | tee "$tests"
test_status=${PIPESTATUS[0]}
target/release/flowhmc bench --device cuda 2>&1 | tee "$bench"
bench_status=${PIPESTATUS[0]}
set -e

echo
echo "## flowhmc GPU check: ${gpu:-no GPU found by nvidia-smi}"
echo
echo "| check | result |"
echo "|---|---|"
grep -E '^test .* \.\.\. ' "$tests" | sed -E 's/^test (.*) \.\.\. (.*)$/| \1 | \2 |/' || true
grep -E 'skipped' "$tests" | sed -E 's/^(.*): skipped, (.*)$/| \1 | skipped: \2 |/' || true
# bench lines: a name, a number, and a unit or nothing
awk '{ sub(/[ ]+$/, "") }
    NF >= 2 && $0 !~ /^flowhmc:/ && $0 !~ /panicked|^note:|^thread / {
        number = "^-?[0-9.]+(e[-+]?[0-9]+)?$"
        name = $0
        if ($NF ~ number) { value = $NF; unit = ""; sub(/[ ]+[^ ]+$/, "", name) }
        else { value = $(NF - 1); unit = " " $NF; sub(/[ ]+[^ ]+[ ]+[^ ]+$/, "", name) }
        printf "| %s | %s%s |\n", name, value, unit
    }' "$bench"
grep -E '^flowhmc: error' "$bench" | sed -E 's/^(.*)$/| bench | \1 |/' || true
echo
[ "$test_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
