"""Learning experiments for issue 10: PAN[H]+CTX on MREF, CPU."""
import argparse, json, math, time, sys
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from pan.data import make_dataset
from pan.models import build_model
from pan.evaluation.metrics import evaluate

p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--model", default="pan-h-ctx")
p.add_argument("--opt", default="adam")
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--bs", type=int, default=64)
p.add_argument("--ntrain", type=int, default=30000)
p.add_argument("--seconds", type=float, default=900)
p.add_argument("--init", default="default")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--clip", type=float, default=5.0)
p.add_argument("--eval_every", type=float, default=60)
p.add_argument("--qscale", type=float, default=1.0)
p.add_argument("--wd", type=float, default=0.0)
p.add_argument("--warmup", type=int, default=0)
p.add_argument("--cosine", action="store_true")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--fp32", action="store_true")
p.add_argument("--nval", type=int, default=1000)
p.add_argument("--gate_b2", type=float, default=None)
p.add_argument("--save", default=None)
p.add_argument("--conv_bias", type=float, default=None)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
tr = make_dataset("mref", "train", a.ntrain, seed=0)
va = make_dataset("mref", "val", a.nval, seed=0)

def blind(ds):
    # most common colour among the image's digits (ties -> first), accuracy
    acc = 0
    for i in range(len(ds.query)):
        img = ds.image_index[i]
        ans = ds.answer[ds.image_index == img]
        acc += np.bincount(ans, minlength=5).argmax() == ds.answer[i]
    return acc / len(ds.query)
print("blind val", blind(va), flush=True)
model = build_model(a.model, backend="torch")
if a.init == "glorot":
    for m in model.modules():
        for n_, prm in m.named_parameters(recurse=False):
            if prm.ndim >= 2:
                nn.init.xavier_uniform_(prm)
            elif "bias" in n_:
                nn.init.zeros_(prm)
            elif n_ == "weight2":
                bound = math.sqrt(6 / (prm.numel() + 1)); nn.init.uniform_(prm, -bound, bound)
if a.conv_bias is not None:
    for st in model.backbone.stages:
        st[0].bias.data.uniform_(0.5 * a.conv_bias, a.conv_bias)
if a.gate_b2 is not None:
    for g in model.gates:
        g.bias2.data.fill_(a.gate_b2)
for m in model.modules():
    if hasattr(m, "query_embedding"):
        m.query_embedding.weight.data.mul_(a.qscale)
model = model.to(memory_format=torch.channels_last)
params = list(model.parameters())
if a.opt == "adam": opt = torch.optim.Adam(params, lr=a.lr, weight_decay=a.wd)
elif a.opt == "adamw": opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
elif a.opt == "rmsprop": opt = torch.optim.RMSprop(params, lr=a.lr, alpha=0.9, eps=1e-6)
elif a.opt == "sgd": opt = torch.optim.SGD(params, lr=a.lr, momentum=0.9, nesterov=True)
images = torch.from_numpy(tr.images).permute(0, 3, 1, 2).contiguous()
img_idx = torch.from_numpy(tr.image_index).long(); q = torch.from_numpy(tr.query).long(); ans = torch.from_numpy(tr.answer).long()
log = open(f"/work/exp/logs/{a.name}.jsonl", "w")
t0 = time.time(); seen = 0; step = 0; next_eval = a.eval_every; rl = []; rc = []
total_est = None
gen = torch.Generator().manual_seed(a.seed)
perm = torch.randperm(len(q), generator=gen); pos = 0
def do_eval(final=False):
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        r = evaluate(model, va, batch_size=250)
    model.train()
    return r
train_time = 0.0
qgs = [0.0] * 4
from pan.evaluation.tpr import image_attention, true_positive_ratio
from pan.evaluation.metrics import batch_images
def layer_tprs():
    model.eval(); out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        idx = np.arange(200)
        x, masks = batch_images(va, idx, "cpu")
        o = model(x.contiguous(memory_format=torch.channels_last), torch.from_numpy(va.query[idx]))
        for k, (m, g) in enumerate(zip(o.attention, model.attention_geometry)):
            att = image_attention([m.float()], [g], len(idx), "cpu")
            out.append(round(true_positive_ratio(att, masks).mean().item(), 4))
    model.train(); return out
while True:
    el = train_time
    if el >= a.seconds: break
    ts = time.time()
    if pos + a.bs > len(q):
        perm = torch.randperm(len(q), generator=gen); pos = 0
    idx = perm[pos:pos + a.bs]; pos += a.bs
    x = images[img_idx[idx]].float().div_(255).contiguous(memory_format=torch.channels_last)
    frac = el / a.seconds
    lr = a.lr
    if a.warmup and step < a.warmup: lr = a.lr * (step + 1) / a.warmup
    if a.cosine: lr = lr * 0.5 * (1 + math.cos(math.pi * frac))
    for g in opt.param_groups: g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        out = model(x, q[idx])
    lp = out.log_probs.float()
    loss = F.nll_loss(lp, ans[idx]); loss.backward()
    qg = [l.query_embedding.weight.grad.norm().item() for l in [*model.gates, model.scores]]
    qgs = [x + y for x, y in zip(qgs, qg)] if step % 200 else qg
    gn = torch.nn.utils.clip_grad_norm_(params, a.clip if a.clip > 0 else float("inf"))
    opt.step()
    rl.append(loss.item()); rc.append((lp.argmax(1) == ans[idx]).float().mean().item())
    step += 1; seen += a.bs
    train_time += time.time() - ts
    if train_time >= next_eval or train_time >= a.seconds:
        next_eval += a.eval_every
        r = do_eval()
        e = {"t": round(train_time, 1), "step": step, "images": seen, "train_loss": float(np.mean(rl)), "train_acc": float(np.mean(rc)),
             "val_acc": r["accuracy"], "tpr": r["tpr"], "lr": lr, "gn": float(gn), "layer_tpr": layer_tprs(), "qgrad": [round(x, 5) for x in qg], "wall": round(time.time() - t0, 1)}
        rl, rc = [], []
        log.write(json.dumps(e) + "\n"); log.flush()
        print(json.dumps(e), flush=True)

if a.save:
    torch.save(model.state_dict(), a.save)
