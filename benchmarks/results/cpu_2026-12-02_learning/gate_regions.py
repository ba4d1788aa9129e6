"""Mean value of each attention layer's map (spread to image space, un-normalised) on the target digit's pixels,
on the other digits' pixels and on the background, over 300 MREF val examples. Usage: gate_regions.py MODEL.pt"""
import sys

import numpy as np
import torch

from pan.data import make_dataset
from pan.evaluation.metrics import batch_images
from pan.evaluation.tpr import spread_to_image
from pan.models import build_model

torch.set_num_threads(1)
va = make_dataset("mref", "val", 1000, seed=0)
model = build_model("pan-h-ctx", backend="torch")
model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
if len(sys.argv) > 2:
    for n in model.norms:
        n.eps = float(sys.argv[2])
model.eval()
idx = np.arange(300)
x, target = batch_images(va, idx, "cpu")
inst = torch.as_tensor(va.instances[va.image_index[idx]])
digits = inst > 0
others = digits & ~target
bg = ~digits
with torch.no_grad():
    out = model(x, torch.from_numpy(va.query[idx]))
for k, (m, g) in enumerate(zip(out.attention, model.attention_geometry)):
    img = spread_to_image(m.float(), g) * g.rf ** 2  # each pixel: the mean map value over the locations seeing it
    seen = img > 0
    vals = [(img * r * seen).sum().item() / (r & seen).sum().item() for r in (target, others, bg)]
    raw = m.float()
    print(f"layer {k}: target {vals[0]:.4f}  other digits {vals[1]:.4f}  background {vals[2]:.4f}  "
          f"(map min {raw.min():.4f} median {raw.median():.4f} max {raw.max():.4f})")
