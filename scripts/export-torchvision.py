#!/usr/bin/env python3
"""Exports a torchvision classifier (seeded weights; BN statistics perturbed so folding matters)
to ONNX for images 3×SIZE×SIZE with a dynamic batch, for mpq-bench's imported-model rows:
ResNet-18 with 10 classes at 96² (infer.resnet18.fp32), ResNet-50 with 1000 classes at 224² and
a Softmax head (infer.resnet50.w8a8: what a deployed classifier ends in). Speed does not depend
on the weights' values.

Usage: export-torchvision.py ARCH OUT.onnx [--size 96] [--classes 10] [--softmax]
"""
import argparse
import warnings
import torch
import torchvision

warnings.filterwarnings("ignore", category=DeprecationWarning)
ap = argparse.ArgumentParser()
ap.add_argument("arch", choices=["resnet18", "resnet50"])
ap.add_argument("out")
ap.add_argument("--size", type=int, default=96)
ap.add_argument("--classes", type=int, default=10)
ap.add_argument("--softmax", action="store_true")
args = ap.parse_args()
torch.manual_seed(0)
model = getattr(torchvision.models, args.arch)(num_classes=args.classes)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
if args.softmax:
    model = torch.nn.Sequential(model, torch.nn.Softmax(dim=1))
model.eval()
x = torch.randn(1, 3, args.size, args.size)
output = "probabilities" if args.softmax else "logits"
torch.onnx.export(model, (x,), args.out, dynamo=False, opset_version=17, input_names=["input"], output_names=[output],
                  dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}}, do_constant_folding=True)
