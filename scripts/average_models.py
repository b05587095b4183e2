"""Average the weights of models of one lineage (the bundled tadsr-small is the mean of its
realism stages 5 and 6; see docs/MODEL_CARD.md):

    python scripts/average_models.py runs/gan6c/model.safetensors runs/gan7c/model.safetensors \
        -o runs/soup67.safetensors
"""

from __future__ import annotations

import argparse

from tadsr.checkpoints.average import average_models
from tadsr.checkpoints.errors import CheckpointError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+", help="two or more model files of one lineage")
    ap.add_argument("-o", "--out", required=True, help="the averaged model file to write")
    args = ap.parse_args()
    try:
        print(f"wrote {average_models(args.models, args.out)}")
    except (CheckpointError, ValueError, OSError) as exc:
        raise SystemExit(f"average_models.py: {exc}") from None


if __name__ == "__main__":
    main()
