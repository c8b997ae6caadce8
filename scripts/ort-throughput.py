#!/usr/bin/env python3
"""ONNX Runtime's inference rate (images/s) on ONNX models, the anchor for mpq-bench's infer.*.

Usage: ort-throughput.py --threads T --batch B [--budget S] [--exact] MODEL.onnx [MODEL.onnx ...]
       ort-throughput.py --serve
The first prints one JSON object per model: {"model": path, "images_per_second": x, "threads": T}.
With --serve it reads one JSON request per line on stdin — {"model": path, "threads": T,
"batch": B, "budget": S, "exact": false} — and answers each with one such object (or
{"model": path, "error": message}) on stdout, keeping each session between requests: mpq-bench
asks for the anchor's rate and times its own side in turns, so a drift of the machine's speed
falls on both.

Inputs are seeded random normals of the model's input shape (Fashion-MNIST's when symbolic); the
rate is the best of repeated runs lasting at least the budget (and at least 3) after one warm-up
run, as mpq-bench times its own side. --exact sets "session.x64quantprecision": on x86 CPUs
without VNNI, ONNX Runtime's default int8 kernels add u8·s8 product pairs in 16 bits, which
saturates for weights outside [-64, 63]; with it, they take its exact (slower) u8·u8 path. It
changes nothing where VNNI runs.
"""
import argparse, json, sys, time
import numpy as np
import onnxruntime as ort

sessions, inputs = {}, {}


def session_for(path, threads, exact):
    key = (path, threads, exact)
    if key not in sessions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if exact:
            options.add_session_config_entry("session.x64quantprecision", "1")
        sessions[key] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return sessions[key]


def rate(path, threads, batch, budget, exact=False):
    session = session_for(path, threads, exact)
    name = session.get_inputs()[0].name
    # The model's own input shape after the batch axis (Fashion-MNIST's where it is symbolic).
    dims = session.get_inputs()[0].shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        dims = [1, 28, 28]
    key = (path, batch)
    if key not in inputs:
        inputs[key] = np.random.default_rng(0).standard_normal([batch] + list(dims)).astype(np.float32)
    x = inputs[key]
    session.run(None, {name: x})
    best, spent, runs = float("inf"), 0.0, 0
    while spent < budget or runs < 3:
        t0 = time.perf_counter()
        session.run(None, {name: x})
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return {"model": path, "images_per_second": batch / best, "threads": threads}


def serve():
    for line in sys.stdin:
        if not line.strip():
            continue
        r = None
        try:
            r = json.loads(line)
            answer = rate(r["model"], int(r["threads"]), int(r["batch"]), float(r.get("budget", 1.0)), bool(r.get("exact", False)))
        except Exception as e:  # an unreadable model or request: say so, keep serving
            answer = {"model": str(r.get("model", "")) if isinstance(r, dict) else "", "error": str(e)}
        print(json.dumps(answer), flush=True)


parser = argparse.ArgumentParser()
parser.add_argument("--serve", action="store_true")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--budget", type=float, default=1.0)
parser.add_argument("--exact", action="store_true")
parser.add_argument("models", nargs="*")
args = parser.parse_args()
if args.serve:
    serve()
else:
    for path in args.models:
        print(json.dumps(rate(path, args.threads, args.batch, args.budget, args.exact)), flush=True)
