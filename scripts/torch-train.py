#!/usr/bin/env python3
"""PyTorch CPU beside mpq's training and Hessian benchmarks (the anchors of `train.*` and `hvp.*`).

Usage: torch-train.py --model cnn|resnet20 --images N [--threads 2]
       torch-train.py --hvp --images 256 --samples 3 [--threads 2]
Training: one epoch over the first N Fashion-MNIST training images as mpq trains — SGD with
Nesterov momentum 0.9, weight decay 5e-4, batch 128, random horizontal flips, the model in
training mode — after a warm-up of a tenth as many; prints {"model", "images_per_second"}.
Hessian: ResNet-20 (eval mode: batch norm frozen, as the sensitivity analyses use it) on the
first N images, one Hutchinson sample = one Hessian-vector product with a Rademacher v over
every weight (double backward through the kept gradient graph, PyHessian's way); prints
{"model", "seconds_per_sample"} (the gradient graph's construction spread over the samples).
Needs pip torch (CPU).
"""
import argparse, json, os, sys, time
import torch
import torch.nn as nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_torch import fashion_mnist, ResNet20, CNN  # noqa: E402


def epoch(model, x, y, batch=128):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=gen)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = order[i:i + batch]
        xb = x[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xb), y[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def hvp_seconds(model, x, y, samples):
    model.eval()
    params = [p for p in model.parameters() if p.dim() > 1]
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(0)
    for s in range(samples):
        v = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1 for p in params]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=s < samples - 1)
        sum(float((a * b).sum()) for a, b in zip(v, hv))
    return (time.perf_counter() - start) / samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["cnn", "resnet20"], default="resnet20")
    ap.add_argument("--images", type=int, default=2560)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hvp", action="store_true")
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    xs, ys = fashion_mnist("train")
    x, y = torch.from_numpy(xs[:args.images].copy()), torch.from_numpy(ys[:args.images].copy())
    model = ResNet20() if args.model == "resnet20" else CNN()
    if args.hvp:
        hvp_seconds(model, x[:32], y[:32], 1)  # warm-up
        print(json.dumps({"model": args.model, "seconds_per_sample": hvp_seconds(model, x, y, args.samples)}))
        return
    epoch(model, x[:max(128, args.images // 10)], y[:max(128, args.images // 10)])
    print(json.dumps({"model": args.model, "images_per_second": len(x) / epoch(model, x, y)}))


if __name__ == "__main__":
    main()
