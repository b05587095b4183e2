#!/usr/bin/env bash
# Rebuild the bundled models from nothing: corpus, teacher, the TAD-SR student and its two
# ablations (regression only; no GAN), the faithful endpoint of the fidelity dial (two
# stages), then copy teacher, student and endpoint into the package and measure the model
# card. Every step resumes where it stopped if the script is rerun.
#
#   bash scripts/train_bundled.sh                    # CPU: about 2 h on 2 cores
#   bash scripts/train_bundled.sh --device cuda      # one GPU: a few minutes
#   bash scripts/train_bundled.sh --config tiny --data DIR --out DIR --no-bundle   # CI smoke run
#
# --config   teacher and distillation preset (small = the bundled models; tiny = tests)
# --data     a folder of photos to train on instead of the Debian corpus (data/photos)
# --out      where the run folders go (default runs/)
# --no-bundle  train only: do not copy into the package or measure the model card
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=auto CONFIG=small DATA="" OUT=runs BUNDLE=1
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-bundle) BUNDLE=0; shift ;;
        *) echo "train_bundled.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
export OMP_WAIT_POLICY=PASSIVE TADSR_PROGRESS=${TADSR_PROGRESS:-1}
if [ -z "$DATA" ]; then
    tadsr data photos --out data/photos
    DATA=data/photos
fi
COMMON=(--device "$DEVICE" --resume --set "data.root=$DATA" --set data.val_count=0)
if [ "$DEVICE" = cpu ] || { [ "$DEVICE" = auto ] && ! python -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; }; then
    COMMON+=(--set run.threads=1)  # one run per core, runs side by side
fi

# 1. the teacher: ResShift, 15 steps, pixel-unshuffle f4 latent
T=$OUT/teacher/model.safetensors
[ -f "$T" ] || tadsr train teacher --config "$CONFIG" --out "$OUT/teacher" "${COMMON[@]}"

# 2. the TAD-SR student (all three losses) first builds the cache of teacher targets; the
#    ablations (regression only; regression + HFSD) reuse it and run beside it.
distill() {  # OUT_NAME [--losses L]
    local name=$1; shift
    [ -f "$OUT/$name/model.safetensors" ] || tadsr train distill --config "$CONFIG" \
        --teacher "$T" --out "$OUT/$name" "${COMMON[@]}" "$@"
}
# stage 1 as the shipped student was trained (2026-12-02, before issue 20): the paper's
# discriminator over the teacher's encoder at the paper's GAN and HFSD weights
PAPER_D=(--set disc_kind=encoder --set disc_t_max=0 --set disc_noise=gaussian
         --set disc_pretrain=0 --set w_gan=0.02 --set w_hfsd=1 --set teacher_input=lq)
distill student "${PAPER_D[@]}" &
FULL=$!
CACHE=$OUT/student/teacher_cache.pt
while [ ! -f "$CACHE" ] && kill -0 $FULL 2>/dev/null; do sleep 2; done
[ -f "$CACHE" ] || { wait $FULL; [ -f "$CACHE" ] || CACHE=""; }
SHARE=()
[ -n "$CACHE" ] && SHARE=(--set "teacher_cache_file=$CACHE")
distill student-reg --losses reg "${SHARE[@]}" "${PAPER_D[@]}"
distill student-nogan --losses reg,hfsd "${SHARE[@]}" "${PAPER_D[@]}"
wait $FULL

# 2b. the realism stages of the default student (issue 20): regression + the small preset's
#     pixel discriminator, from stage 1, then from stage 2 (seeds as run)
STAGES=()
[ "$CONFIG" = small ] && STAGES=(--set teacher_cache=1024)
TARGET=(--set teacher_input=lq)  # stages 2-4: the teacher samples the student's own LR
realism() {  # OUT_NAME INIT SEED STEPS CACHE [DECAY_FROM]
    local it=()
    [ "$CONFIG" = small ] && it=(--set "run.iterations=$4")
    [ "$CONFIG" = small ] && [ -n "${6:-}" ] && it+=(--set "optim.decay_from=$6")
    distill "$1" --losses reg,gan --set "run.init_from=$2" --set "run.seed=$3" \
        --set "teacher_cache_file=$5" "${it[@]}" "${STAGES[@]}" "${TARGET[@]}"
}
realism student-gan2 "$OUT/student/model.safetensors" 0 200 "$OUT/student-gan2/teacher_cache.pt"
realism student-gan3 "$OUT/student-gan2/model.safetensors" 2 400 "$OUT/student-gan2/teacher_cache.pt"
# stage 4 on 1024 other cached samples (as run: the ablation's seed-1 cache; here its own,
# seed 3), cosine decay over its last 400 steps
realism student-gan4 "$OUT/student-gan3/model.safetensors" 3 1000 "$OUT/student-gan4/teacher_cache.pt" 600
# stages 5-6 (third session): the teacher samples the clean bicubic LR of each HR crop
# (teacher_input=clean), the LR mix leans to the paper's heavy degradation (30/30/40), each
# stage on 1024 new cached samples, cosine decay over the last 400 steps
TARGET=(--set teacher_input=clean --set "data.degradation=bicubic:0.3+realesrgan_mild:0.3+realesrgan:0.4")
realism student-gan6c "$OUT/student-gan4/model.safetensors" 6 1000 "$OUT/student-gan6c/teacher_cache.pt" 600
realism student-gan7c "$OUT/student-gan6c/model.safetensors" 7 1000 "$OUT/student-gan7c/teacher_cache.pt" 600
# the bundled student: the mean of stages 5 and 6 (a lower NIQE than either, MODEL_CARD.md)
S=$OUT/student-soup67.safetensors
[ -f "$S" ] || python scripts/average_models.py "$OUT/student-gan6c/model.safetensors" \
    "$OUT/student-gan7c/model.safetensors" -o "$S"

# 3. the fidelity dial's F = 1 end: the teacher fine-tuned at t = T-1 by regression to the
#    HR latent; stage 1 on the cached samples, stage 2 from stage 1 on fresh crops (no
#    cache: no loss reads the teacher's sample). The small preset's step counts as run.
STAGE1=() STAGE2=(--set teacher_cache=0)
if [ "$CONFIG" = small ]; then
    STAGE1=(--set teacher_cache=2048 --set run.iterations=700)
    STAGE2+=(--set run.iterations=1500 --set optim.decay_from=1000)
fi
F1=$OUT/faithful-stage1/model.safetensors
F=$OUT/faithful/model.safetensors
[ -f "$F1" ] || tadsr train distill --config "$CONFIG" --teacher "$T" --out "$OUT/faithful-stage1" \
    --losses reg --set reg_target=hr "${STAGE1[@]}" "${COMMON[@]}"
[ -f "$F" ] || tadsr train distill --config "$CONFIG" --teacher "$T" --out "$OUT/faithful" \
    --losses reg --set reg_target=hr --set "run.init_from=$F1" "${STAGE2[@]}" "${COMMON[@]}"
# stages 3-5 (fourth session): the same on fresh crops of mixes with lr_noise (noise and JPEG
# on the sharp LR grid), which taught the endpoint to clean heavy inputs: the bundled F = 1
faithful_n() {  # OUT_NAME INIT SEED STEPS DECAY_FROM MIX
    local it=()
    [ "$CONFIG" = small ] && it=(--set "run.iterations=$4" --set "optim.decay_from=$5")
    [ -f "$OUT/$1/model.safetensors" ] || tadsr train distill --config "$CONFIG" --teacher "$T" \
        --out "$OUT/$1" --losses reg --set reg_target=hr --set teacher_cache=0 \
        --set "run.init_from=$2" --set "run.seed=$3" --set "data.degradation=$6" "${it[@]}" \
        "${COMMON[@]}"
}
NOISY=bicubic:0.3+realesrgan_mild:0.2+realesrgan:0.25+lr_noise:0.25
NOISY2=bicubic:0.4+realesrgan_mild:0.2+realesrgan:0.2+lr_noise:0.2
faithful_n faithful-n3 "$F" 11 1000 600 "$NOISY"
faithful_n faithful-n4 "$OUT/faithful-n3/model.safetensors" 12 1500 900 "$NOISY2"
faithful_n faithful-n5 "$OUT/faithful-n4/model.safetensors" 13 4000 2500 "$NOISY2"
F=$OUT/faithful-n5/model.safetensors

# 4. bundle and measure
if [ "$BUNDLE" = 1 ]; then
    python scripts/bundle_models.py --teacher "$T" --student "$S" \
        --faithful "$F"
    [ -d data/photo_val/hr ] || tadsr data photo-val --out data/photo_val
    python benchmarks/model_card.py --regression "$OUT/student-reg/model.safetensors" \
        --no-gan "$OUT/student-nogan/model.safetensors"
fi
echo "trained: $T $S $OUT/student-reg/model.safetensors $OUT/student-nogan/model.safetensors $F"
