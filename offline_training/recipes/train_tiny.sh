#!/usr/bin/env bash
# The recipe of the shipped tiny model (model/weights/tiny) and of the Table 2 ablation at our scale, on one CPU.
# Usage: offline_training/recipes/train_tiny.sh WORK_DIR   (about 2.5 h on a 2-core CPU; every step resumes)
# See model/weights/tiny/README.md (model card) and docs/EVALUATION.md (results).
set -euo pipefail
work=${1:?usage: $0 WORK_DIR}
export MUJOCO_GL=${MUJOCO_GL:-egl}
data=$work/data runs=$work/runs
mkdir -p "$data" "$runs"

# 1. data: 240 train scenes (15 morphologies), 16 validation scenes (train morphologies, new seed),
#    32 test scenes (the 4 held-out morphologies); 9 frames each at 240x320
embody4d synth --out "$data/train" --num-samples 240 --split train --seed 0 --num-frames 9
embody4d synth --out "$data/val" --num-samples 16 --split train --seed 2 --num-frames 9
embody4d synth --out "$data/test" --num-samples 32 --split test --seed 1 --num-frames 9

# 2. the tiny VAE (image mode: one frame per item), then the router's residual estimator
embody4d train --stage vae --data "$data/train" --out "$runs/vae" --preset tiny --frames 1 --batch-size 4 \
  --steps 2000 --lr 1e-3 --warmup-steps 50 --ema 0.999 --checkpoint-every 250 --num-threads 2 --resume
embody4d train --stage estimator --data "$data/train" --out "$runs/estimator" --init "$runs/vae/model" --frames 1 \
  --batch-size 8 --steps 300 --lr 1e-3 --warmup-steps 20 --pseudo4d-fraction 0.5 --checkpoint-every 100 \
  --num-threads 2 --resume

# 3. the transformer, four variants with the same budget (paper Table 2): pseudo-4D data only, + compositional
#    two-view data, + interaction-aware attention, + confidence-routed experts (the shipped model)
common=(--stage stage1 --data "$data/train" --init "$runs/estimator/model" --frames 1 --batch-size 8
        --lr 5e-4 --warmup-steps 50 --ema 0.995 --checkpoint-every 100 --num-threads 1 --resume --no-progress)
steps=${STAGE1_STEPS:-1200}
embody4d train "${common[@]}" --steps "$steps" --out "$runs/base" --pseudo4d-fraction 1.0 --no-use-experts --no-use-interaction &
embody4d train "${common[@]}" --steps "$steps" --out "$runs/data" --pseudo4d-fraction 0.5 --no-use-experts --no-use-interaction &
embody4d train "${common[@]}" --steps "$steps" --out "$runs/data_ia" --pseudo4d-fraction 0.5 --no-use-experts &
embody4d train "${common[@]}" --steps "$steps" --out "$runs/data_ia_experts" --pseudo4d-fraction 0.5 &
wait

# 4. held-out evaluation, image mode (the node's default)
embody4d eval --data "$data/test" --model "$runs/data_ia_experts/model" --out "$work/eval/full" --mode image \
  --baselines warp,telea,pushpull,no-experts --num-threads 2
for variant in base data data_ia; do
  embody4d eval --data "$data/test" --model "$runs/$variant/model" --out "$work/eval/$variant" --mode image \
    --baselines "" --num-threads 2
done
