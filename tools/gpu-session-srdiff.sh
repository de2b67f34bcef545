#!/bin/bash
# The second call of the lent GPU session: the diffusion rows of the throughput bench, then SRDiff's U-Net alone.
set -u
START=$(date +%s); DEADLINE_S=${DEADLINE_S:-330}; DATA=.trainpack; W=/tmp/srwork2
rm -rf "$W" && mkdir -p "$W/runs" "$W/pack"; LIVE="$OUT/live.log"; export PYTHONUNBUFFERED=1
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LIVE"; }
pack() { cp "$W"/runs/*.log "$W"/runs/srdiff/log.csv "$W"/runs/srdiff/loss.png "$W"/runs/*.safetensors "$W"/*.md "$W/pack/" 2>/dev/null
  (cd "$W" && tar cf - pack) | split -b 15M - "$OUT/results.tar.part-"; }
trap pack EXIT
SHIM="$W/shim"; mkdir -p "$SHIM"; ln -s "$PWD/plugins" "$SHIM/sr_desk_plugins"
say "throughput (diffusion)"
PYTHONPATH="$SHIM:$PWD" timeout 60 python3 bench/train_throughput.py --data "$DATA" --device cuda --iters 10 --profile 3 --stages diffusion > "$W/throughput-diffusion.md" 2>&1
tail -n 30 "$W/throughput-diffusion.md" >> "$LIVE"
M=$(python3 -c "print(($DEADLINE_S - ($(date +%s) - $START) - 45) / 60)")
say "srdiff for $M min"
python3 -m sr_desk.training srdiff --out "$W/runs/srdiff" --stage diffusion --init resources/weights/srdiff-x4.safetensors \
  --data "$DATA" --device cuda --precision bf16 --steps 0 --minutes "$M" --batch 64 --patch 128 --lr 2e-4 --warmup 200 \
  --val-every 1000 --val-steps 10 --log-every 100 --ckpt-every 2000 --no-progress --threads 8 > "$W/runs/srdiff.log" 2>&1 &
while [ -n "$(jobs -r)" ]; do sleep 20; say "$(grep -a 'step=' "$W/runs/srdiff.log" | tail -n 1 | cut -c1-200)"; done
tail -n 3 "$W/runs/srdiff.log" >> "$LIVE"
python3 -m sr_desk.training srdiff --out "$W/runs/srdiff" --stage diffusion --export "$W/runs/srdiff-x4.safetensors" --fp16 >> "$W/runs/srdiff.log" 2>&1
say "done"
