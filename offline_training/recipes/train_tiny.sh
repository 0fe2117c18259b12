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

# 2. the tiny VAE (image mode: one frame per item), then the router's residual estimator. (The shipped VAE is the live
#    weights of step 2000, whose latent scaling was then calibrated: that run's EMA had no warm-up yet; with the
#    warm-up the EMA model written here is the one to use.)
embody4d train --stage vae --data "$data/train" --out "$runs/vae" --preset tiny --frames 1 --batch-size 4 \
  --steps 2000 --lr 1e-3 --warmup-steps 50 --ema 0.999 --checkpoint-every 250 --num-threads 2 --resume
embody4d train --stage estimator --data "$data/train" --out "$runs/estimator" --init "$runs/vae/model" --frames 1 \
  --batch-size 8 --steps 300 --lr 1e-3 --warmup-steps 20 --pseudo4d-fraction 0.5 --checkpoint-every 100 \
  --num-threads 2 --resume

# 3. the transformer, four variants with the same budget (paper Table 2): pseudo-4D data only, + compositional
#    two-view data, + interaction-aware attention, + confidence-routed experts; then the full one continues alone
common=(--stage stage1 --data "$data/train" --init "$runs/estimator/model" --frames 1 --batch-size 8
        --lr 5e-4 --warmup-steps 50 --ema 0.995 --checkpoint-every 100 --resume --no-progress)
embody4d train "${common[@]}" --num-threads 1 --steps 1000 --out "$runs/base" --pseudo4d-fraction 1.0 --no-use-experts --no-use-interaction &
embody4d train "${common[@]}" --num-threads 1 --steps 1000 --out "$runs/data" --pseudo4d-fraction 0.5 --no-use-experts --no-use-interaction &
embody4d train "${common[@]}" --num-threads 1 --steps 1000 --out "$runs/data_ia" --pseudo4d-fraction 0.5 --no-use-experts &
embody4d train "${common[@]}" --num-threads 1 --steps 1000 --out "$runs/data_ia_experts" --pseudo4d-fraction 0.5 &
wait
cp -r "$runs/data_ia_experts/model" "$runs/data_ia_experts_1000"
embody4d train "${common[@]}" --num-threads 2 --steps 2000 --out "$runs/data_ia_experts" --pseudo4d-fraction 0.5

# 4. inference settings chosen on the validation split: one flow step from the noised warp at sigma 0.15 (plain
#    decoding), then residual decoding (the decoded change to the conditioning frames) on top
set_inference() { python3 - "$1/pipeline_config.json" "$2" "$3" <<'PY'
import json, sys
path, strength, residual = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "residual"
config = json.load(open(path))
config.update(init_strength=strength, num_inference_steps=1, residual_decoding=residual)
json.dump(config, open(path, "w"), indent=2)
PY
}
validate() {  # validate SIGMA DECODING(plain|residual)
  rm -rf "$work/val/$1-$2" && mkdir -p "$work/val" && cp -r "$runs/data_ia_experts/model" "$work/val/$1-$2"
  set_inference "$work/val/$1-$2" "$1" "$2"
  embody4d eval --data "$data/val" --model "$work/val/$1-$2" --out "$work/eval/val_$1-$2" --mode image --baselines "" --num-threads 2
}
for sigma in 1.0 0.5 0.3 0.15; do validate "$sigma" plain; done
for sigma in 0.3 0.15 0.05; do validate "$sigma" residual; done
set_inference "$runs/data_ia_experts/model" 0.15 residual   # the shipped model/weights/tiny

# 5. held-out evaluation, image mode (the node's default)
embody4d eval --data "$data/test" --model "$runs/data_ia_experts/model" --out "$work/eval/full" --mode image \
  --baselines warp,telea,pushpull,no-experts --num-threads 2
for variant in base data data_ia data_ia_experts_1000; do
  model="$runs/$variant/model"; [ "$variant" = data_ia_experts_1000 ] && model="$runs/$variant"
  for sigma in 1.0 0.15; do
    rm -rf "$work/ablation/$variant-$sigma" && mkdir -p "$work/ablation" && cp -r "$model" "$work/ablation/$variant-$sigma"
    set_inference "$work/ablation/$variant-$sigma" "$sigma" plain
    embody4d eval --data "$data/test" --model "$work/ablation/$variant-$sigma" --out "$work/eval/$variant-$sigma" \
      --mode image --baselines "" --num-threads 2
  done
done
