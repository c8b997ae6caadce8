#!/usr/bin/env python3
"""ONNX Runtime's own static int8 quantization of a float ONNX model: the anchor model of
mpq-bench's integer rows where ../shared/reference has none (infer.mobilenetv2.w8a8).

Usage: ort-quantize.py IN.onnx OUT.onnx [--images 512]
As ../shared/reference made NAME.ort_int8.onnx: QDQ format, per-channel int8 weights, uint8
activations, MinMax calibration on the first N Fashion-MNIST training images (normalised as
mpq does). Prints {"model": OUT, "bytes": size}.
"""
import argparse, json, os, sys
import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Images(CalibrationDataReader):
    def __init__(self, name, x):
        self.batches = iter([{name: x[i:i + 64]} for i in range(0, len(x), 64)])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=512)
    args = ap.parse_args()
    import onnx
    from fmnist import fashion_mnist
    x, _ = fashion_mnist("train")
    name = onnx.load(args.model).graph.input[0].name
    quantize_static(args.model, args.out, Images(name, np.ascontiguousarray(x[:args.images])), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(json.dumps({"model": args.out, "bytes": os.path.getsize(args.out)}))


if __name__ == "__main__":
    main()
