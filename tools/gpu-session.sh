#!/bin/bash
# One lent GPU session (device tool), prepared and dry-run on the CPU first:
#   1. bench/train_throughput.py (old loop vs the shared trainer, with the profiler's top operators)
#   2. bench/upscale_speed.py on CUDA (the CLI's own pipeline, through an "installed" shim), then a profiled SRDiff upscale
#   3. three trainings side by side, each paced by the time left (--steps 0 --minutes M):
#      SRDiff's compact U-Net, LDDPM (denoise, then adversarial), the Diff-SR prior
#   4. everything packed into $OUT as one tar split in 15 MB parts
# Usage (from the repository root): OUT=... DEADLINE_S=540 bash tools/gpu-session.sh   (DATA defaults to .trainpack)
set -u
START=$(date +%s)
DEADLINE_S=${DEADLINE_S:-540}
DATA=${DATA:-.trainpack}
DEVICE=${DEVICE:-cuda}
W=${WORK:-/tmp/srwork}
rm -rf "$W" && mkdir -p "$W/runs" "$W/logs"
LIVE="$OUT/live.log"
export PYTHONUNBUFFERED=1
left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LIVE"; }

pack() {
  say "packing"
  for f in "$W"/runs/*/log.csv "$W"/runs/*/loss.png "$W"/runs/*/train.log; do
    [ -f "$f" ] || continue
    d="$W/pack/$(basename "$(dirname "$f")")"; mkdir -p "$d"; cp "$f" "$d/"
  done
  mkdir -p "$W/pack"; cp "$W"/logs/* "$W/pack/" 2>/dev/null; cp "$W"/runs/*.safetensors "$W/pack/" 2>/dev/null
  (cd "$W" && tar cf - pack) | split -b 15M - "$OUT/results.tar.part-"
  ls -la "$OUT" | tee -a "$LIVE"
}
trap pack EXIT

{ nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } > "$W/logs/device.txt" 2>&1
cat "$W/logs/device.txt" >> "$LIVE"

# -- 0. the project as if installed ---------------------------------------------------------
# The project is not installed there: a dist-info naming the built-in entry points, the
# plugins and resources under their installed names, and platformdirs pointing at $W.
SHIM="$W/shim"; mkdir -p "$SHIM/sr_desk-0.0.0.dist-info"
ln -s "$PWD/plugins" "$SHIM/sr_desk_plugins"; ln -s "$PWD/resources" "$SHIM/sr_desk_resources"
printf 'Metadata-Version: 2.1\nName: sr-desk\nVersion: 0.0.0\n' > "$SHIM/sr_desk-0.0.0.dist-info/METADATA"
python3 - "$SHIM" <<'PY'
import re, sys, pathlib
text = pathlib.Path("pyproject.toml").read_text()
block = re.search(r'\[project\.entry-points\."sr_desk\.plugins"\]\n(.*?)\n\n', text, re.S).group(1)
pathlib.Path(sys.argv[1], "sr_desk-0.0.0.dist-info", "entry_points.txt").write_text("[sr_desk.plugins]\n" + block.replace('"', "") + "\n")
PY
if ! python3 -c "import platformdirs" 2>/dev/null; then
  cat > "$SHIM/platformdirs.py" <<PY
def user_config_dir(*a, **k): return "$W/home/config"
def user_data_dir(*a, **k): return "$W/home/data"
def user_cache_dir(*a, **k): return "$W/home/cache"
PY
fi
# -- 1. training throughput, alone on the device ------------------------------------------
say "train_throughput"
PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout 90 python3 bench/train_throughput.py --data "$DATA" --device "$DEVICE" --iters "${BENCH_ITERS:-20}" --profile "${PROFILE_ITERS:-5}" \
  > "$W/logs/throughput.md" 2> "$W/logs/throughput.err"
tail -n 40 "$W/logs/throughput.md" >> "$LIVE"

# -- 2. the whole upscale through the CLI, alone on the device ------------------------------
say "upscale_speed"
PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}" SR_DESK_HOME="$W/home" timeout 100 python3 bench/upscale_speed.py --sizes "${SPEED_SIZES:-128,512}" \
  --methods bicubic,srdiff-encoder,srdiff --devices "$DEVICE" --precision auto --baseline-sizes 128 --markdown \
  > "$W/logs/speed.md" 2> "$W/logs/speed.err"
tail -n 20 "$W/logs/speed.md" >> "$LIVE"; tail -n 5 "$W/logs/speed.err" >> "$LIVE"
# Where a 512 px SRDiff upscale's 5 s go: GPU busy share, top kernels, top host operators.
say "upscale profile"
PYTHONPATH="$SHIM:$PWD${PYTHONPATH:+:$PYTHONPATH}" SR_DESK_HOME="$W/home" timeout 60 python3 bench/upscale_speed.py --sizes 512 \
  --methods srdiff --devices "$DEVICE" --precision auto --baseline-sizes 0 --profile \
  > "$W/logs/speed-profile.txt" 2> "$W/logs/speed-profile.err"
head -n 40 "$W/logs/speed-profile.txt" | cut -c1-200 >> "$LIVE"

# -- 3. trainings side by side, paced by the time left ----------------------------------------
M=$(python3 -c "print(max(0.5, ($(left) - 75) / 60))")
say "training for $M min each"
COMMON=(--data "$DATA" --device "$DEVICE" --precision bf16 --steps 0 --no-progress --log-every 100 --ckpt-every 1000 --threads 4)
train() {  # name, minutes, then the trainer's arguments
  local name=$1 minutes=$2; shift 2
  python3 -m sr_desk.training "$@" "${COMMON[@]}" --minutes "$minutes" > "$W/runs/$name.log" 2>&1
  say "$name: $(tail -n 1 "$W/runs/$name.log")"
}
(
  train srdiff "$M" srdiff --out "$W/runs/srdiff" --stage diffusion --init resources/weights/srdiff-x4.safetensors \
    --batch 64 --patch 128 --lr 2e-4 --warmup 200 --val-every 1000 --val-steps 10
  python3 -m sr_desk.training srdiff --out "$W/runs/srdiff" --stage diffusion --export "$W/runs/srdiff-x4.safetensors" --fp16 >> "$W/runs/srdiff.log" 2>&1
) &
(
  M1=$(python3 -c "print($M * 0.6 - 0.3)"); M2=$(python3 -c "print($M * 0.4 - 0.3)")
  train lddpm-denoise "$M1" lddpm --out "$W/runs/lddpm" --stage denoise --init resources/weights/lddpm-x4.safetensors \
    --batch 64 --patch 96 --lr 2e-4 --warmup 200 --val-every 1000
  python3 -m sr_desk.training lddpm --out "$W/runs/lddpm" --stage denoise --export "$W/runs/lddpm-denoise-x4.safetensors" --fp16 >> "$W/runs/lddpm-denoise.log" 2>&1
  train lddpm-adversarial "$M2" lddpm --out "$W/runs/lddpm" --stage adversarial --init "$W/runs/lddpm-denoise-x4.safetensors" \
    --batch 64 --patch 96 --lr 5e-5 --warmup 100 --val-every 500
  python3 -m sr_desk.training lddpm --out "$W/runs/lddpm" --stage adversarial --export "$W/runs/lddpm-adversarial-x4.safetensors" --fp16 >> "$W/runs/lddpm-adversarial.log" 2>&1
) &
(
  train diffsr "$M" diffsr --out "$W/runs/diffsr" --init resources/weights/diffsr-prior.safetensors \
    --batch 64 --patch 128 --lr 1e-4 --warmup 200 --val-every 1000
  python3 -m sr_desk.training diffsr --out "$W/runs/diffsr" --export "$W/runs/diffsr-prior.safetensors" --fp16 >> "$W/runs/diffsr.log" 2>&1
) &
while [ -n "$(jobs -r)" ]; do
  sleep 30
  say "$(for f in "$W"/runs/*.log; do echo "$(basename "$f"): $(grep -a 'step=' "$f" | tail -n 1 | cut -c1-160)"; done)"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >> "$LIVE" 2>/dev/null
done
say "done"
