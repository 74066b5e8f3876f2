"""Check rendered frames: they exist, are not constant, hold no NaN, and (with a ground-truth
folder of the same file names) reach a PSNR. Also reports the PSNR of a blank white and a blank
black frame against the same ground truth: a floor a trained model must beat.
Usage: python images.py RENDERS [GT]; prints one JSON line."""

import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def load(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0


def psnr(a, b):
    mse = float(np.mean((a - b) ** 2))
    return 100.0 if mse == 0 else -10 * math.log10(mse)


renders = sorted(Path(sys.argv[1]).glob("*.png"))
gt_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else None
result = {"frames": len(renders), "constant": 0, "nan": 0}
scores, white, black = [], [], []
for path in renders:
    image = load(path)
    result["nan"] += int(np.isnan(image).any())
    result["constant"] += int(image.std() < 1e-3)
    if gt_dir and (gt_dir / path.name).exists():
        gt = load(gt_dir / path.name)
        scores.append(psnr(image, gt))
        white.append(psnr(np.ones_like(gt), gt))
        black.append(psnr(np.zeros_like(gt), gt))
if scores:
    result.update(
        psnr=float(np.mean(scores)), psnr_blank_white=float(np.mean(white)), psnr_blank_black=float(np.mean(black))
    )
result["ok"] = result["frames"] > 0 and result["constant"] == 0 and result["nan"] == 0
print(json.dumps(result))
