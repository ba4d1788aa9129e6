"""TPR of a trained PAN[H]+CTX when gate 1's map is replaced by a stroke indicator (1 where the gate's receptive
field holds any digit pixel, bg elsewhere): how far stroke/background contrast in gate 1 alone would take TPR.
Usage: oracle_tpr.py MODEL.pt [bn_eps]"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

from pan.data import make_dataset
from pan.evaluation.metrics import batch_images
from pan.evaluation.tpr import image_attention, true_positive_ratio
from pan.models import build_model

torch.set_num_threads(1)
va = make_dataset("mref", "val", 1000, seed=0)
model = build_model("pan-h-ctx", backend="torch")
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
if len(sys.argv) > 2:
    for n in model.norms:
        n.eps = float(sys.argv[2])
model.eval()
idx = np.arange(500)
x, target = batch_images(va, idx, "cpu")
inst = torch.as_tensor(va.instances[va.image_index[idx]])
digits = (inst > 0).float()
with torch.no_grad():
    out = model(x, torch.from_numpy(va.query[idx]))
geo = model.attention_geometry
maps = [m.float() for m in out.attention]
g1 = geo[0]
stroke = F.max_pool2d(digits[:, None], g1.rf, g1.stride)[:, 0][:, : maps[0].shape[1], : maps[0].shape[2]]
tgt = F.max_pool2d(target.float()[:, None], g1.rf, g1.stride)[:, 0][:, : maps[0].shape[1], : maps[0].shape[2]]
B = len(idx)
def tpr(ms, gs):
    return true_positive_ratio(image_attention(ms, gs, B, "cpu"), target).mean().item() * 100
print(f"as trained: {tpr(maps, geo):.1f}%")
for k in range(len(maps)):
    print(f"  layer {k} alone: {tpr([maps[k]], [geo[k]]):.1f}%")
for bg in (0.0, 0.05, 0.2):
    print(f"gate 1 = stroke indicator (bg {bg}): {tpr([stroke + bg * (1 - stroke)] + maps[1:], geo):.1f}%")
print(f"gate 1 = target indicator: {tpr([tgt] + maps[1:], geo):.1f}%")
print(f"stroke indicator, layers 2-4 uniform: {tpr([stroke], [g1]):.1f}%")
