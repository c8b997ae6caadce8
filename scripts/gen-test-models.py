#!/usr/bin/env python3
"""Writes small torchvision-style models as ONNX, from both PyTorch exporters, with ONNX
Runtime's logits on seeded inputs: the import test's set (Tests/Fixtures/torchvision).

Each architecture is shrunk where its constructor allows (widths, depths, input size) while
keeping every operator pattern of the full model; weights are random (seeded), batch-norm
statistics are perturbed so that folding them is tested too. For each model and exporter:

    NAME.EXPORTER.onnx         the model (dynamo's weights inline when they fit, else .onnx.data)
    NAME.EXPORTER.npz          x (inputs, batch 2) and y (ONNX Runtime's outputs)

Needs pip torch, torchvision, onnx, onnxscript and onnxruntime (CPU). Usage:
    scripts/gen-test-models.py [--out DIR] [--only NAME,...]
"""
import argparse, os, sys, warnings

import numpy as np
import torch
import torch.nn as nn
import torchvision.models as tv

warnings.filterwarnings("ignore")


def vit_small():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)


def convnext_small():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    cfg = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)]
    return ConvNeXt(cfg, stochastic_depth_prob=0.0, num_classes=10)


def efficientnet_small():
    from torchvision.models.efficientnet import MBConvConfig, EfficientNet
    cfg = [MBConvConfig(1, 3, 1, 16, 8, 1, width_mult=1.0, depth_mult=1.0),
           MBConvConfig(6, 3, 2, 8, 16, 1, width_mult=1.0, depth_mult=1.0),
           MBConvConfig(6, 5, 2, 16, 24, 1, width_mult=1.0, depth_mult=1.0)]
    return EfficientNet(cfg, dropout=0.0, num_classes=10, last_channel=64)


def mobilenet_v3_small():
    from torchvision.models.mobilenetv3 import InvertedResidualConfig, MobileNetV3
    cfg = [InvertedResidualConfig(16, 3, 16, 16, True, "RE", 2, 1, 1.0),
           InvertedResidualConfig(16, 3, 48, 24, False, "RE", 2, 1, 1.0),
           InvertedResidualConfig(24, 5, 64, 24, True, "HS", 1, 1, 1.0),
           InvertedResidualConfig(24, 5, 96, 32, True, "HS", 2, 1, 1.0)]
    return MobileNetV3(cfg, last_channel=64, num_classes=10)


def regnet_small():
    from torchvision.models.regnet import BlockParams, RegNet
    params = BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return RegNet(params, num_classes=10)


def densenet_small():
    return tv.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=10)


def googlenet_small():
    # GoogLeNet's widths are fixed in its constructor; its block hooks let every width shrink 8×.
    from torchvision.models.googlenet import BasicConv2d, Inception, InceptionAux
    def conv(i, o, **kw):
        return BasicConv2d(i if i == 3 else i // 8, o // 8, **kw)
    def inception(*widths):
        return Inception(widths[0] // 8, *[w // 8 for w in widths[1:]])
    m = tv.GoogLeNet(num_classes=10, aux_logits=False, transform_input=False, init_weights=True,
                     blocks=[conv, inception, InceptionAux])
    m.fc = nn.Linear(1024 // 8, 10)
    return m


def shufflenet_small():
    return tv.ShuffleNetV2([2, 2, 2], [16, 24, 48, 96, 128], num_classes=10)


def squeezenet_small():
    return tv.squeezenet1_1(num_classes=10)


def resnet18_small():
    # ResNet-18's pattern (stem, max pool, basic blocks with strided 1×1 shortcuts) at an
    # eighth of its stage widths and one block per stage.
    from torchvision.models.resnet import BasicBlock, ResNet
    make = ResNet._make_layer
    ResNet._make_layer = lambda self, block, planes, blocks, stride=1, dilate=False: make(self, block, planes // 8, blocks, stride, dilate)
    try:
        m = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    finally:
        ResNet._make_layer = make
    m.fc = nn.Linear(64, 10)
    return m


def mobilenet_v2_small():
    return tv.MobileNetV2(num_classes=10, width_mult=0.25, inverted_residual_setting=[
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 1, 2], [6, 64, 1, 2]])


# name → (constructor, input size [C, H, W])
MODELS = {
    "resnet18": (resnet18_small, [3, 64, 64]),
    "mobilenet_v2": (mobilenet_v2_small, [3, 64, 64]),
    "mobilenet_v3_small": (mobilenet_v3_small, [3, 64, 64]),
    "efficientnet_b0": (efficientnet_small, [3, 64, 64]),
    "squeezenet1_1": (squeezenet_small, [3, 64, 64]),
    "shufflenet_v2": (shufflenet_small, [3, 64, 64]),
    "googlenet": (googlenet_small, [3, 64, 64]),
    "densenet121": (densenet_small, [3, 64, 64]),
    "regnet": (regnet_small, [3, 64, 64]),
    "convnext_tiny": (convnext_small, [3, 64, 64]),
    "vit": (vit_small, [3, 32, 32]),
}


def perturb(model, gen):
    """Random running statistics and affine parameters: folding is exercised, outputs stay O(1)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def export(model, x, path, exporter):
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=1024)
        prog = torch.onnx.export(model, (x,), dynamo=True, optimize=True, verbose=False, dynamic_shapes=({0: batch},))
        prog.save(path, external_data=True)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "torchvision"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    import onnxruntime as ort
    os.makedirs(args.out, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    torch.set_num_threads(2)
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX export
    for name, (make, shape) in MODELS.items():
        if only and name not in only:
            continue
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1)
        model = make().eval()
        with torch.no_grad():
            perturb(model, gen)
        x = torch.randn([2] + shape, generator=gen)
        for exporter in ("torchscript", "dynamo"):
            path = os.path.join(args.out, f"{name}.{exporter}.onnx")
            try:
                with torch.no_grad():
                    export(model, x, path, exporter)
            except Exception as e:  # an exporter that cannot write this model is reported, not hidden
                print(f"{name} {exporter}: export failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
                continue
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            y = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
            with torch.no_grad():
                ref = model(x).numpy()
            gap = float(np.abs(y - ref).max())
            np.savez(os.path.join(args.out, f"{name}.{exporter}.npz"), x=x.numpy(), y=y)
            size = os.path.getsize(path) + (os.path.getsize(path + ".data") if os.path.exists(path + ".data") else 0)
            print(f"{name} {exporter}: {size / 1e6:.2f} MB, ORT vs PyTorch max |Δ| {gap:.2e}")


if __name__ == "__main__":
    main()
