#!/usr/bin/env python3
"""ONNX Runtime's own static int8 quantization of a float ONNX model: the anchor model of
mpq-bench's integer rows where ../shared/reference has none (infer.mobilenetv2.w8a8).

Usage: ort-quantize.py IN.onnx OUT.onnx [--images 512 | --random N]
As ../shared/reference made NAME.ort_int8.onnx: QDQ format, per-channel int8 weights, uint8
activations, MinMax calibration on the first N Fashion-MNIST training images (normalised as
mpq does), or with --random on N seeded standard-normal inputs of the model's input shape (one
at a time where the model fixes its batch: infer.resnet50.w8a8). Prints {"model": OUT, "bytes": size}.
"""
import argparse, json, os, sys
import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Images(CalibrationDataReader):
    def __init__(self, name, x, batch=64):
        self.batches = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--random", type=int, default=0)
    args = ap.parse_args()
    import onnx
    graph_input = onnx.load(args.model).graph.input[0]
    name = graph_input.name
    if args.random > 0:
        dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        x = np.random.default_rng(0).standard_normal([args.random] + [d or 1 for d in dims[1:]]).astype(np.float32)
        reader = Images(name, x, batch=dims[0] or 64)
    else:
        from fmnist import fashion_mnist
        x, _ = fashion_mnist("train")
        reader = Images(name, np.ascontiguousarray(x[:args.images]))
    quantize_static(args.model, args.out, reader, quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(json.dumps({"model": args.out, "bytes": os.path.getsize(args.out)}))


if __name__ == "__main__":
    main()
