#!/usr/bin/env python3
"""ONNX Runtime's accuracy on a labelled image set: the anchor for mpq's ONNX export.

Usage: ort-eval.py MODEL.onnx IMAGES.npy LABELS.npy
Prints {"model": path, "accuracy": a, "count": n} (one JSON object). Runs on the CPU provider,
2 threads, in batches of 256, with ONNX Runtime's default graph optimizations (QDQ fusion).
On x86 CPUs without VNNI, ONNX Runtime's fast u8·s8 kernels add pairs of products in 16 bits,
which saturates for 8-bit weights outside [-64, 63]; "session.x64quantprecision" asks it for
the exact path there (it has no effect where VNNI runs).
"""
import json, sys
import numpy as np
import onnxruntime as ort

path, images, labels = sys.argv[1:4]
x = np.load(images).astype(np.float32)
y = np.load(labels).reshape(-1).astype(np.int64)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
options.add_session_config_entry("session.x64quantprecision", "1")
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
right = 0
for start in range(0, len(x), 256):
    logits = session.run(None, {name: x[start:start + 256]})[0]
    right += int((logits.reshape(len(logits), -1).argmax(axis=1) == y[start:start + 256]).sum())
print(json.dumps({"model": path, "accuracy": right / len(x), "count": int(len(x))}))
