#!/usr/bin/env python3
"""Sony MCT's post-training mixed precision on our ResNet-20 or CNN: the anchor of `ptq.*`.

Usage: mct-ptq.py --model resnet20 --weights ../shared/reference/fmnist_resnet20.npz --bytes 135304 [--images 512]
Prints one JSON object: {"accuracy": test accuracy, "seconds": wall time of MCT's call,
"bytes": the weight memory MCT's bit choice takes, "bits": {layer: bits}}.

The setting of issue 21: the reference weights (PyTorch state dict, batch norm not folded), the
first `--images` Fashion-MNIST training images as MCT's representative data (batches of 32),
weights only (activations stay float), candidate widths {8, 4, 3, 2} per layer (MCT's default
symmetric per-channel kernel quantizer with MSE thresholds, its default bias correction), and a
weight-memory target in bytes. CPU only, 2 threads. Needs pip torch, torchvision and
model-compression-toolkit 2.6.1.
"""
import argparse, json, os, sys, time
import numpy as np
import torch
import torch.nn as nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_torch import fashion_mnist, ResNet20, CNN  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)


def weights_only_tpc(widths):
    """MCT's IMX500 v1 platform with activations left float and the given kernel widths."""
    from model_compression_toolkit.target_platform_capabilities.tpc_models.imx500_tpc.v1_0 import tpc as imx500
    from model_compression_toolkit.target_platform_capabilities.constants import KERNEL_ATTR, WEIGHTS_N_BITS
    base, _, default = imx500.get_op_quantization_configs()
    base = base.clone_and_edit(enable_activation_quantization=False)
    default = default.clone_and_edit(enable_activation_quantization=False)
    options = [base.clone_and_edit(attr_to_edit={KERNEL_ATTR: {WEIGHTS_N_BITS: b}}) for b in widths]
    return imx500.generate_tpc(default_config=default, base_config=base, mixed_precision_cfg_list=options,
                               name="weights_only")


def accuracy(model, x, y):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            right += int((model(torch.from_numpy(x[i:i + 500])).argmax(1).numpy() == y[i:i + 500]).sum())
    return right / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["resnet20", "cnn"], default="resnet20")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--bytes", type=float, required=True)
    ap.add_argument("--images", type=int, default=512)
    args = ap.parse_args()
    import model_compression_toolkit as mct

    model = ResNet20() if args.model == "resnet20" else CNN()
    state = np.load(args.weights)
    model.load_state_dict({k: torch.from_numpy(state[k]) for k in state.files if k in model.state_dict()}, strict=True)
    model.eval()
    xtrain, _ = fashion_mnist("train")
    xtest, ytest = fashion_mnist("test")
    calib = xtrain[:args.images]

    def representative():
        for i in range(0, len(calib), 32):
            yield [torch.from_numpy(calib[i:i + 32])]

    core = mct.core.CoreConfig(mixed_precision_config=mct.core.MixedPrecisionQuantizationConfig())
    start = time.time()
    quantized, info = mct.ptq.pytorch_post_training_quantization(
        model, representative, target_resource_utilization=mct.core.ResourceUtilization(weights_memory=args.bytes),
        core_config=core, target_platform_capabilities=weights_only_tpc([8, 4, 3, 2]))
    seconds = time.time() - start
    bits, total = {}, 0.0
    for name, module in quantized.named_modules():
        cfg = getattr(module, "weights_quantizers", None)
        if cfg and "weight" in cfg:
            b = int(cfg["weight"].num_bits)
            layer = getattr(module, "layer", None)
            count = layer.weight.numel() if layer is not None else 0
            bits[name] = b
            total += count * b / 8
    print(json.dumps({"accuracy": accuracy(quantized, xtest, ytest), "seconds": round(seconds, 2),
                      "bytes": total, "bits": bits}))


if __name__ == "__main__":
    main()
