#!/usr/bin/env bash
# The main job on a fresh machine: install nst_jax into .venv, fetch and convert torchvision's VGG19 where the
# network allows, then stylize the example images into out/.
#   NST_SIZE (default 512) and NST_ITERATIONS (default 500) override the image size and iteration count.
#   NST_JAX_ALLOW_RANDOM=1 goes on with a random-init VGG19 when the weights cannot be downloaded (output is
#   then NOT real style transfer; useful only to see the pipeline run).
set -euo pipefail
cd "$(dirname "$0")/.."
size="${NST_SIZE:-512}"
iterations="${NST_ITERATIONS:-500}"

[ -d .venv ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e .

weights_args=()
if ! python -c "import nst_jax, warnings; warnings.simplefilter('ignore'); nst_jax.load_weights()" 2>/dev/null; then
  python -c "import torch" 2>/dev/null || python -m pip install --quiet -c constraints.txt torch
  if ! python -m convert_weights; then
    if [ "${NST_JAX_ALLOW_RANDOM:-0}" = "1" ]; then
      echo "examples/run.sh: continuing with a RANDOM VGG19 (NST_JAX_ALLOW_RANDOM=1): results are not real style transfer" >&2
      python -m convert_weights --random -o out/random_vgg19.h5
      weights_args=(--weights out/random_vgg19.h5)
    else
      echo "examples/run.sh: no VGG19 weights. On a machine with internet access run: python -m convert_weights" >&2
      echo "  (or set NST_JAX_ALLOW_RANDOM=1 to run the pipeline with random weights)" >&2
      exit 2
    fi
  fi
fi

# On a machine without an accelerator this takes a while: say how long before it starts.
python - "$size" "$iterations" <<'PY'
import os, sys
import jax
size, iterations = int(sys.argv[1]), int(sys.argv[2])
if jax.default_backend() == "cpu":
    cores = os.cpu_count() or 1
    def minutes(size, iterations):
        # Measured on 2 CPU cores (benchmarks/RESULTS.md): one loss evaluation of VGG19 at 512 px takes ~3.4 s,
        # L-BFGS makes ~1.3 per iteration over a run, and ~0.4 s per iteration does not shrink with the image.
        per_iteration = (1.3 * 3.4 * (size / 512) ** 2 + 0.4) * 2 / cores
        return 2 * iterations * per_iteration / 60
    print(f"examples/run.sh: no GPU found: JAX runs on {cores} CPU cores, and 2 images of {size} px x {iterations} "
          f"L-BFGS iterations take roughly {minutes(size, iterations):.0f} minutes here. For a quick look: "
          f"NST_SIZE=256 NST_ITERATIONS=200 bash examples/run.sh (roughly {minutes(256, 200):.0f} minutes); "
          "with an NVIDIA GPU: pip install -e '.[cuda]' (seconds per image).", file=sys.stderr)
PY

mkdir -p out
for style in style style2; do
  python -m nst_jax examples/content.jpg "examples/${style}.jpg" -o "out/content_${style}.png" \
    --image-size "$size" --iterations "$iterations" "${weights_args[@]}"
done
echo "examples/run.sh: wrote out/content_style.png and out/content_style2.png"
