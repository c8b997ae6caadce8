#!/usr/bin/env python3
"""ONNX Runtime's inference rate (images/s) on ONNX models, the anchor for mpq-bench's infer.*.

Usage: ort-throughput.py --threads T --batch B [--exact] MODEL.onnx [MODEL.onnx ...]
Prints one JSON object per model: {"model": path, "images_per_second": x, "threads": T}.
Inputs are seeded random normals of the model's input shape (Fashion-MNIST's when symbolic); the rate is the best of repeated runs
lasting at least 1 s after one warm-up run, as mpq-bench times its own side. --exact sets
"session.x64quantprecision": on x86 CPUs without VNNI, ONNX Runtime's default int8 kernels add
u8·s8 product pairs in 16 bits, which saturates for weights outside [-64, 63]; with it, they
take its exact (slower) u8·u8 path. It changes nothing where VNNI runs.
"""
import argparse, json, time
import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser()
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--budget", type=float, default=1.0)
parser.add_argument("--exact", action="store_true")
parser.add_argument("models", nargs="+")
args = parser.parse_args()

for path in args.models:
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    if args.exact:
        options.add_session_config_entry("session.x64quantprecision", "1")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    # The model's own input shape after the batch axis (Fashion-MNIST's where it is symbolic).
    dims = session.get_inputs()[0].shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        dims = [1, 28, 28]
    x = np.random.default_rng(0).standard_normal([args.batch] + list(dims)).astype(np.float32)
    session.run(None, {name: x})
    best, spent, runs = float("inf"), 0.0, 0
    while spent < args.budget or runs < 3:
        t0 = time.perf_counter()
        session.run(None, {name: x})
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    print(json.dumps({"model": path, "images_per_second": args.batch / best, "threads": args.threads}), flush=True)
