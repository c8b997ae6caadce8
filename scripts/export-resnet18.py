#!/usr/bin/env python3
"""Exports torchvision's ResNet-18 (10 classes, seeded weights; BN statistics perturbed so
folding matters) to ONNX for images 3×SIZE×SIZE with a dynamic batch: the imported-CNN row of
mpq-bench's float inference (infer.resnet18.fp32). Speed does not depend on the weights' values.

Usage: export-resnet18.py OUT.onnx [SIZE]   (SIZE 96 by default)
"""
import sys
import warnings
import torch
import torchvision

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.manual_seed(0)
size = int(sys.argv[2]) if len(sys.argv) > 2 else 96
model = torchvision.models.resnet18(num_classes=10).eval()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
x = torch.randn(1, 3, size, size)
torch.onnx.export(model, (x,), sys.argv[1], dynamo=False, opset_version=17, input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
