#!/usr/bin/env python3
"""Extracts the ONNX package's own backend test models into OUT for mpq's backend-suite test.

    scripts/gen-onnx-backend.py OUT

For each model of the suites `pytorch-converted`, `pytorch-operator`, `simple` and `light`
(shipped inside the `onnx` pip package, under onnx/backend/test/data) writes
OUT/SUITE/TEST/model.onnx and OUT/SUITE/TEST/data.npz holding input_0, input_1, … and
output_0, output_1, … as float32/int64 arrays. The first three suites carry their inputs and
expected outputs (test_data_set_0); the light model zoo carries none, so its inputs are drawn
from a seeded normal distribution (numpy default_rng(0), symbolic dimensions set to 1) and its
expected outputs are ONNX Runtime's on those inputs. Writes OUT/manifest.txt (one SUITE/TEST
per line) last, so a partial run is never mistaken for a finished one.
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

SUITES = ["pytorch-converted", "pytorch-operator", "simple", "light"]


def tensor_files(folder, prefix):
    files = sorted((f for f in os.listdir(folder) if f.startswith(prefix) and f.endswith(".pb")),
                   key=lambda f: int(f[len(prefix):-3]))
    out = []
    for f in files:
        t = onnx.TensorProto()
        with open(os.path.join(folder, f), "rb") as fh:
            t.ParseFromString(fh.read())
        out.append(numpy_helper.to_array(t))
    return out


def light_case(model_path):
    import onnxruntime as ort
    model = onnx.load(model_path)
    inits = {i.name for i in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.standard_normal(dims).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    return list(feeds.values()), outputs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    manifest = []
    for suite in SUITES:
        root = os.path.join(data, suite)
        if suite == "light":
            tests = sorted(f[:-5] for f in os.listdir(root) if f.endswith(".onnx"))
        else:
            tests = sorted(t for t in os.listdir(root) if os.path.exists(os.path.join(root, t, "model.onnx")))
        for test in tests:
            dest = os.path.join(out, suite, test)
            os.makedirs(dest, exist_ok=True)
            if suite == "light":
                source = os.path.join(root, test + ".onnx")
                inputs, outputs = light_case(source)
            else:
                source = os.path.join(root, test, "model.onnx")
                case = os.path.join(root, test, "test_data_set_0")
                if not os.path.isdir(case):
                    continue
                inputs, outputs = tensor_files(case, "input_"), tensor_files(case, "output_")
            shutil.copyfile(source, os.path.join(dest, "model.onnx"))
            arrays = {f"input_{i}": a for i, a in enumerate(inputs)}
            arrays.update({f"output_{i}": a for i, a in enumerate(outputs)})
            # Object arrays (string tensors) cannot go in an npz without pickle: keep the model,
            # drop the data; the test counts such a case as refused by its inputs.
            arrays = {k: v for k, v in arrays.items() if v.dtype != object}
            np.savez(os.path.join(dest, "data.npz"), **arrays)
            manifest.append(f"{suite}/{test}")
    with open(os.path.join(out, "manifest.txt"), "w") as fh:
        fh.write("\n".join(manifest) + "\n")
    print(f"{len(manifest)} backend test models written to {out}")


if __name__ == "__main__":
    main()
