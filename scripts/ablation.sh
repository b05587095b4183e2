#!/usr/bin/env bash
# The realism ablation (issue 20): one distillation stage per arm and seed, all from the same
# student, then every result scored on the whole-photo validation set (clean, real, heavy).
#
#   bash scripts/ablation.sh --init MODEL --teacher TEACHER [--steps 300] [--seeds "0 1"] \
#       [--out runs/ablation] [--arms "reg hfsd_t hfsd_hr gan full"] [--pretrain 100] \
#       [--full-lo-hfsd 0.1]
#
# Arms: reg = regression to the teacher's 4-step sample only; hfsd_t = + HFSD with the
# teacher's sample as reference (TAD-SR); hfsd_hr = + HFSD with the HR latent as reference
# (the official code's option); gan = regression + the small preset's pixel discriminator;
# full = regression + HFSD (teacher reference) + the pixel discriminator, i.e. TAD-SR with
# the small preset's discriminator (w_gan 0.003, --pretrain D-only updates first; the
# paper's 0.02 made the student paint a 4-pixel grid within 100 steps); full_lo = the full
# arm with HFSD weighted --full-lo-hfsd (default 0.1, the face preset's weight) instead of
# the paper's 1 (the other HFSD arms pin 1). Runs go two at a time (one per core, one
# thread each) and resume where they stopped when the script is rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
INIT="" TEACHER="" STEPS=300 SEEDS="0 1" OUT=runs/ablation ARMS="reg hfsd_t hfsd_hr gan full"
PRETRAIN=100 FULL_LO_HFSD=0.1
while [ $# -gt 0 ]; do
    case "$1" in
        --init) INIT=$2; shift 2 ;;
        --teacher) TEACHER=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --arms) ARMS=$2; shift 2 ;;
        --pretrain) PRETRAIN=$2; shift 2 ;;
        --full-lo-hfsd) FULL_LO_HFSD=$2; shift 2 ;;
        *) echo "ablation.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$INIT" ] && [ -n "$TEACHER" ] || { echo "ablation.sh: --init and --teacher are required" >&2; exit 2; }
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
PIXEL_D=(--set disc_kind=pixel --set disc_t_max=1 --set disc_noise=none
         --set disc_pretrain="$PRETRAIN" --set w_gan=0.003)
arm_args() {
    case "$1" in
        reg) echo "--losses reg" ;;
        hfsd_t) echo "--losses reg,hfsd --set hfsd_reference=teacher --set w_hfsd=1" ;;
        hfsd_hr) echo "--losses reg,hfsd --set hfsd_reference=hr --set w_hfsd=1" ;;
        gan) echo "--losses reg,gan ${PIXEL_D[*]}" ;;
        full) echo "--losses reg,hfsd,gan --set hfsd_reference=teacher --set w_hfsd=1 ${PIXEL_D[*]}" ;;
        full_lo) echo "--losses reg,hfsd,gan --set hfsd_reference=teacher --set w_hfsd=$FULL_LO_HFSD ${PIXEL_D[*]}" ;;
        *) echo "ablation.sh: unknown arm $1" >&2; exit 2 ;;
    esac
}
run_arm() {  # ARM SEED
    local dir=$OUT/$1-s$2
    [ -f "$dir/model.safetensors" ] && return 0
    # shellcheck disable=SC2046
    tadsr train distill --config small --teacher "$TEACHER" --out "$dir" $(arm_args "$1") \
        --set run.init_from="$INIT" --set run.seed="$2" --set run.iterations="$STEPS" \
        --set teacher_cache=1024 --set teacher_cache_file="$OUT/cache-s$2.pt" \
        --set run.threads=1 --set data.val_count=0 --set run.val_every=0 --resume \
        --set teacher_input=lq \
        > "$dir.log" 2>&1
}
mkdir -p "$OUT"
for seed in $SEEDS; do  # the first arm of a seed builds its cache, the others reuse it
    set -- $ARMS
    run_arm "$1" "$seed"
    shift
    while [ $# -gt 0 ]; do
        run_arm "$1" "$seed" &
        if [ $# -gt 1 ]; then run_arm "$2" "$seed"; shift; fi
        wait
        shift
    done
done
METHODS=()
for seed in $SEEDS; do for arm in $ARMS; do
    METHODS+=(--method "$arm-s$seed=$OUT/$arm-s$seed/model.safetensors")
done; done
python benchmarks/photo_val.py "${METHODS[@]}" --kinds clean,real,heavy --no-grids \
    --json "$OUT/scores.json" --out "outputs/ablation"
