#!/bin/bash
# One lent GPU session (device tool): every model retrained from the shipped weights, measured, packed.
#
#   OUT=... bash tools/gpu-session.sh             on the lent GPU, from the repository root (carry .trainpack)
#   OUT=... bash tools/gpu-session.sh --dry-run   the same steps on this CPU: tiny models, synthetic photos,
#                                                 two steps a stage; about a minute (tests/test_gpu_session.py)
#   OUT=... WORK=/tmp/srwork2 INIT_DIR=/tmp/srwork/better THROUGHPUT=0 DEADLINE_S=380 bash tools/gpu-session.sh
#                                                 the next call on the same warm machine (it keeps /tmp while warm):
#                                                 each model continues the previous call's weights where INIT_DIR
#                                                 holds its file ($W/better: those that beat the shipped file on
#                                                 bench/quality.py), the throughput bench skipped
#
#   1. bench/train_throughput.py: SRDiff's U-Net (the encoder's levers are in docs/training.md), alone on the
#      device: the old loop, then each lever of the shared trainer (fp32, bf16 autocast, bf16 cast once,
#      compiled), % of the bf16 peak
#   2. six models side by side, each continuing its shipped weights (or INIT_DIR's), paced by the time left:
#      SRDiff's encoder then its U-Net; LDDPM's denoising then adversarial stage (with the diversity term);
#      DTLS; DoSSR; the Diff-SR prior
#   3. bench/quality.py on the held-out photos, shipped weights against the new ones (--weights-dir),
#      and bench/upscale_speed.py (SRDiff 512 -> 2048 on the device)
#   4. weights, logs, loss plots and tables packed into $OUT as one tar in parts under 16 MiB
#
# Environment: DEADLINE_S (default 540, dry run 400: a slow CI machine still finishes): seconds for the whole command; DATA (default .trainpack,
# from tools/make-device-pack.py); WORK (default /tmp/srwork); INIT_DIR (default resources/weights): weights to continue, a
# model's shipped file where the folder lacks it; THROUGHPUT (default 1): 0 skips step 1.
set -u
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
START=$(date +%s)
W=${WORK:-/tmp/srwork}
rm -rf "$W" && mkdir -p "$W/runs" "$W/logs" "$W/weights" "$W/home"
LIVE="$OUT/live.log"
export PYTHONUNBUFFERED=1 SR_DESK_HOME="$W/home"
left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LIVE"; }

if [ $DRY = 1 ]; then
  DEADLINE_S=${DEADLINE_S:-400}; DEVICE=cpu; DATA="$W/photos"; TAIL_S=45; MIN_BENCH_S=90
  python3 - "$DATA" <<'PY'
import sys, pathlib
import numpy as np
from PIL import Image
folder = pathlib.Path(sys.argv[1]); folder.mkdir(parents=True)
rng = np.random.default_rng(0)
for i in range(10):  # ten photos: the fixed 10% hold-out keeps one for validation
    Image.fromarray(np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))).save(folder / f"photo{i:02d}.png")
PY
  SIZE=(--batch 2 --patch 32 --steps 2 --log-every 1 --ckpt-every 2 --val-every 2 --threads 1)
  SRDIFF_PRESET=(--preset tiny-4x); PRESET=(--preset tiny); INIT=0
  [ -n "${INIT_DIR:-}" ] && INIT=1  # a dry run's second call continues the first's tiny weights
  BENCH=(--stages encoder,srdiff-unet --size tiny --batch 2 --patch 32 --iters 1 --loops old,bf16)
  QUALITY=(--limit 1 --crop 64 --seeds 1); SPEED=(--sizes 32 --baseline-sizes 0)
else
  # TAIL_S: what step 3 and the packing took on an H100 (30 s), with room to spare
  DEADLINE_S=${DEADLINE_S:-540}; DEVICE=cuda; DATA=${DATA:-.trainpack}; TAIL_S=60; MIN_BENCH_S=20
  SIZE=(--steps 0 --log-every 100 --ckpt-every 1000 --val-every 1000 --threads 3)
  SRDIFF_PRESET=(); PRESET=(); INIT=1
  BENCH=(--stages srdiff-unet --iters 10 --loops old,fp32,bf16-autocast,bf16,bf16+compile --profile 3)
  QUALITY=(--limit 8 --crop 256 --seeds 1); SPEED=(--sizes 128,512 --baseline-sizes 128)
fi
INIT_DIR=${INIT_DIR:-resources/weights}
init() {  # --init: the weights to continue, a path or a shipped file's name (not in a dry run: tiny models)
  [ $INIT = 1 ] || return 0
  case $1 in
    */*) echo "--init $1" ;;
    *) if [ -f "$INIT_DIR/$1" ]; then echo "--init $INIT_DIR/$1"; else echo "--init resources/weights/$1"; fi ;;
  esac
}

pack() {
  say "packing"
  mkdir -p "$W/pack"
  for run in "$W"/runs/*/; do
    [ -d "$run" ] || continue
    d="$W/pack/$(basename "$run")"; mkdir -p "$d"
    cp "$run"/log.csv "$run"/loss.png "$d/" 2>/dev/null
  done
  cp "$W"/runs/*.log "$W"/logs/* "$W/pack/" 2>/dev/null
  mkdir -p "$W/pack/weights"; cp "$W"/weights/*.safetensors "$W/pack/weights/" 2>/dev/null
  (cd "$W" && tar cf - pack) | split -b 15M - "$OUT/results.tar.part-"
  ls -la "$OUT" | tee -a "$LIVE"
}
trap pack EXIT

{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi ($DEVICE)"
  python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } > "$W/logs/device.txt" 2>&1
cat "$W/logs/device.txt" >> "$LIVE"

# -- 0. the project as if installed, where it is not (the GPU machine runs from the tree) ------------
SHIM="$W/shim"; mkdir -p "$SHIM"
if ! python3 -c "import sr_desk_plugins, sr_desk_resources" 2>/dev/null; then
  mkdir -p "$SHIM/sr_desk-0.0.0.dist-info"
  ln -s "$PWD/plugins" "$SHIM/sr_desk_plugins"; ln -s "$PWD/resources" "$SHIM/sr_desk_resources"
  printf 'Metadata-Version: 2.1\nName: sr-desk\nVersion: 0.0.0\n' > "$SHIM/sr_desk-0.0.0.dist-info/METADATA"
  python3 - "$SHIM" <<'PY'
import re, sys, pathlib
text = pathlib.Path("pyproject.toml").read_text()
block = re.search(r'\[project\.entry-points\."sr_desk\.plugins"\]\n(.*?)\n\n', text, re.S).group(1)
pathlib.Path(sys.argv[1], "sr_desk-0.0.0.dist-info", "entry_points.txt").write_text("[sr_desk.plugins]\n" + block.replace('"', "") + "\n")
PY
fi
if ! python3 -c "import platformdirs" 2>/dev/null; then
  printf 'def user_config_dir(*a, **k): return "%s"\ndef user_data_dir(*a, **k): return "%s"\ndef user_cache_dir(*a, **k): return "%s"\n' \
    "$W/home/config" "$W/home/data" "$W/home/cache" > "$SHIM/platformdirs.py"
fi
export PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# -- 1. training throughput, alone on the device -----------------------------------------------------
if [ "${THROUGHPUT:-1}" = 1 ]; then
  say "train_throughput"
  timeout 170 python3 bench/train_throughput.py --data "$DATA" --device "$DEVICE" "${BENCH[@]}" \
    > "$W/logs/throughput.md" 2> "$W/logs/throughput.err"
  grep -a '^|\|^device' "$W/logs/throughput.md" >> "$LIVE"
fi

# -- 2. six models side by side, paced by the time left ----------------------------------------------
M=$(python3 -c "print(max(0.2, ($(left) - $TAIL_S - 20) / 60))")
say "training for $M min a track"
# The batch and patch below are the GPU's; a dry run's SIZE comes after them and wins.
train() {  # name, share of M, then the trainer's arguments (a stage's setup time is taken off its minutes)
  local name=$1 share=$2; shift 2
  local minutes; minutes=$(python3 -c "print(max(0.1, $M * $share - 0.3))")
  local budget=(--minutes "$minutes"); [ $DRY = 1 ] && budget=()
  local command=(python3 -m sr_desk.training "$@" --data "$DATA" --device "$DEVICE" "${SIZE[@]}" "${budget[@]}" --no-progress)
  echo "command: ${command[*]}" > "$W/runs/$name.log"  # for the model card
  "${command[@]}" >> "$W/runs/$name.log" 2>&1
  say "$name: $(grep -a 'step=' "$W/runs/$name.log" | tail -n 1 | cut -c1-200)"
}
export_weights() {  # trainer, run folder, file name, then the trainer's own arguments
  local trainer=$1 run=$2 file=$3; shift 3
  python3 -m sr_desk.training "$trainer" --out "$W/runs/$run" "$@" --export "$W/weights/$file" --fp16 >> "$W/runs/$run.log" 2>&1
}
(
  train srdiff-encoder 0.35 srdiff --out "$W/runs/srdiff" --stage encoder "${SRDIFF_PRESET[@]}" $(init srdiff-x4.safetensors) \
    --lr 2e-4 --warmup 200 --batch 64 --patch 192
  train srdiff-unet 0.65 srdiff --out "$W/runs/srdiff" --stage diffusion "${SRDIFF_PRESET[@]}" $(init srdiff-x4.safetensors) \
    --lr 2e-4 --warmup 200 --val-steps 6 --batch 64 --patch 160
  export_weights srdiff srdiff srdiff-x4.safetensors --stage diffusion
) &
(
  train lddpm-denoise 0.6 lddpm --out "$W/runs/lddpm" --stage denoise "${PRESET[@]}" $(init lddpm-x4.safetensors) \
    --lr 1e-4 --warmup 200 --batch 64 --patch 128
  export_weights lddpm lddpm lddpm-denoise.safetensors --stage denoise
  train lddpm-adversarial 0.4 lddpm --out "$W/runs/lddpm" --stage adversarial "${PRESET[@]}" \
    $(init "$W/weights/lddpm-denoise.safetensors") --lr 5e-5 --warmup 100 --batch 64 --patch 128 --diversity 0.5
  export_weights lddpm lddpm lddpm-x4.safetensors --stage adversarial
  rm -f "$W/weights/lddpm-denoise.safetensors"
) &
for model in dtls:dtls-x4 dossr:dossr-x4 diffsr:diffsr-prior; do
  (
    name=${model%%:*}; file=${model#*:}.safetensors
    train "$name" 1.0 "$name" --out "$W/runs/$name" "${PRESET[@]}" $(init "$file") --lr 1e-4 --warmup 200 \
      --batch 64 --patch 128
    export_weights "$name" "$name" "$file"
  ) &
done
while [ -n "$(jobs -r)" ]; do
  sleep 5; [ $(( ($(date +%s) - START) % 30 )) -lt 5 ] || continue
  say "$(for f in "$W"/runs/*.log; do echo "$(basename "$f"): $(grep -a 'step=' "$f" | tail -n 1 | cut -c1-150)"; done)"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$LIVE" 2>/dev/null
done
say "trained: $(ls "$W/weights")"

# -- 3. quality, shipped against new, and the upscale speed --------------------------------------------
METHODS=bicubic,srdiff-encoder,dtls,dossr,diffsr,lddpm,srdiff
for which in shipped new; do
  [ $which = new ] && candidates=(--weights-dir "$W/weights") || candidates=()
  say "quality ($which weights)"
  timeout "$(python3 -c "print(max($MIN_BENCH_S, ($(left) - 40) // 2))")" python3 bench/quality.py --data "$DATA" --device "$DEVICE" \
    --precision auto --methods "$METHODS" "${QUALITY[@]}" "${candidates[@]}" --markdown \
    > "$W/logs/quality-$which.md" 2> "$W/logs/quality-$which.err"
  grep -a '^|' "$W/logs/quality-$which.md" >> "$LIVE"
done
say "better than shipped: $(python3 tools/pick-better-weights.py "$W/logs/quality-shipped.md" "$W/logs/quality-new.md" \
  "$W/weights" "$W/better" | tee "$W/logs/better.txt" | grep -c 'better, kept') files in $W/better (the next call's INIT_DIR)"
cat "$W/logs/better.txt" >> "$LIVE"
say "upscale_speed"
timeout "$(python3 -c "print(max($MIN_BENCH_S, $(left) - 15))")" python3 bench/upscale_speed.py "${SPEED[@]}" \
  --methods bicubic,srdiff-encoder,srdiff --devices "$DEVICE" --precision auto --markdown \
  > "$W/logs/speed.md" 2> "$W/logs/speed.err"
tail -n 12 "$W/logs/speed.md" >> "$LIVE"
say "done"
