#!/usr/bin/env python3
"""HiGHS (scipy.optimize.milp) on bit-allocation instances: the anchor for mpq-bench's solve.*.

Usage: highs-solve.py INSTANCES.json
The file holds a list of instances: {"name", "objective": [[...] per layer], "costs": [[[...] per
layer] per budget], "limits": [...]}. One binary x[l][j] per layer and choice; Σ_j x[l][j] = 1;
Σ cost·x ≤ limit per budget; minimise Σ objective·x with mip_rel_gap 0 (the true optimum).
Prints one JSON object per instance: {"name", "objective", "seconds"} — seconds of milp() alone,
best of three runs.
"""
import json, sys, time
import numpy as np
from scipy.optimize import milp, LinearConstraint, Bounds
from scipy.sparse import csr_matrix, vstack

for inst in json.load(open(sys.argv[1])):
    obj = inst["objective"]
    layers = len(obj)
    widths = [len(o) for o in obj]
    offsets = np.cumsum([0] + widths)
    n = int(offsets[-1])
    c = np.concatenate([np.asarray(o, dtype=float) for o in obj])
    rows, cols = [], []
    for l in range(layers):
        rows += [l] * widths[l]
        cols += list(range(offsets[l], offsets[l + 1]))
    one = csr_matrix((np.ones(n), (rows, cols)), shape=(layers, n))
    budget = csr_matrix(np.array([np.concatenate([np.asarray(x, dtype=float) for x in cost]) for cost in inst["costs"]]))
    constraints = [LinearConstraint(one, 1, 1), LinearConstraint(budget, -np.inf, np.asarray(inst["limits"], dtype=float))]
    best, result = float("inf"), None
    for _ in range(3):
        t0 = time.perf_counter()
        result = milp(c, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1),
                      options={"mip_rel_gap": 0})
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"name": inst["name"], "objective": float(result.fun) if result.success else None,
                      "status": result.status, "seconds": best}), flush=True)
