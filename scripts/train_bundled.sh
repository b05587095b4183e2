#!/usr/bin/env bash
# Rebuild the bundled models from nothing, on a CPU: corpus, evaluation pairs, teacher,
# TAD-SR student and the regression-only ablation, then copy them into the package and
# measure the model card. Every step resumes where it stopped if the script is rerun.
#   bash scripts/train_bundled.sh            (about 2 h on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE TADSR_PROGRESS=1

tadsr data photos --out data/photos
[ -d data/val_pairs/lr ] || tadsr data pairs --hr data/photos --split val --out data/val_pairs \
    --degradation realesrgan --seed 0 --size 256

# 1. the teacher: ResShift, 15 steps, pixel-unshuffle f4 latent
[ -f runs/teacher-small/model.safetensors ] || \
    tadsr train teacher --config small --out runs/teacher-small --resume
T=runs/teacher-small/model.safetensors

# 2. the TAD-SR student (all three losses) and the regression-only baseline, in parallel,
#    one core each; the baseline reuses the full run's cached teacher targets.
[ -f runs/student-small/model.safetensors ] || \
    tadsr train distill --config small --teacher "$T" --out runs/student-small --resume &
FULL=$!
while [ ! -f runs/student-small/teacher_cache.pt ] && kill -0 $FULL 2>/dev/null; do sleep 10; done
[ -f runs/student-small-reg/model.safetensors ] || \
    tadsr train distill --config small --teacher "$T" --losses reg --out runs/student-small-reg \
        --set teacher_cache_file=runs/student-small/teacher_cache.pt --resume
wait $FULL

# 3. bundle and measure
python scripts/bundle_models.py --teacher "$T" --student runs/student-small/model.safetensors
python benchmarks/model_card.py --regression runs/student-small-reg/model.safetensors
