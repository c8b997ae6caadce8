#!/usr/bin/env python3
"""Measure APQ samples on a Ray cluster: each task runs `mpq` on one shard of the policies and
writes that shard's cache; the shards are then merged into one cache by `mpq` itself
(samples(..., merge: [...])), which checks every shard's key (model, validation split and
calibration) and skips bad entries with a warning. Ray schedules and retries the tasks; this
script only shards, launches and merges.

  python3 scripts/ray-samples.py --setup setup.mpq --policies policies.json --cache out.json \\
      [--shards 4] [--address 127.0.0.1:6379] [--mpq .build/release/mpq]

setup.mpq defines `m` (the model), `validation` (a Dataset) and `calibration` (a Dataset, or nil
for no bias correction), with paths relative to the directory this is run from. policies.json
is a JSON list of lists of widths (one per layer). Without --address, a local Ray instance is
started for the run. Each task runs mpq with MPQ_THREADS=1 on one CPU of the cluster.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def mpq_script(setup: str, policies, cache: str, merge=None) -> str:
    lines = [setup, "",
             f"samples(m, validation, policies: {json.dumps(policies)}, calibration: calibration, cache: {json.dumps(cache)}"
             + (f", merge: {json.dumps(merge)}" if merge is not None else "") + ")", ""]
    return "\n".join(lines)


def run_mpq(mpq: str, script_text: str, cwd: str, threads: str = None) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".mpq", delete=False) as f:
        f.write(script_text)
        path = f.name
    try:
        env = dict(os.environ)
        if threads is not None:
            env["MPQ_THREADS"] = threads
        r = subprocess.run([mpq, "run", path], cwd=cwd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mpq exited {r.returncode}: {r.stderr.strip()[-2000:]}")
    finally:
        os.unlink(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setup", required=True, help="an .mpq file defining m, validation and calibration")
    ap.add_argument("--policies", required=True, help="a JSON list of lists of widths")
    ap.add_argument("--cache", required=True, help="the cache file the samples are merged into")
    ap.add_argument("--shards", type=int, default=0, help="tasks (default: the cluster's CPUs)")
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: start a local one)")
    ap.add_argument("--mpq", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "mpq"))
    a = ap.parse_args()

    import ray  # the launcher's one dependency beyond the standard library

    setup = open(a.setup).read()
    policies = json.load(open(a.policies))
    if not isinstance(policies, list) or not all(isinstance(p, list) for p in policies):
        print(f"ray-samples: {a.policies} must hold a JSON list of lists of widths", file=sys.stderr)
        return 2
    mpq = os.path.abspath(a.mpq)
    cwd = os.getcwd()
    cache = os.path.abspath(a.cache)
    if a.address:
        ray.init(address=a.address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    shards = a.shards or max(1, int(ray.cluster_resources().get("CPU", 1)))
    parts = [policies[i::shards] for i in range(shards)]
    work = tempfile.mkdtemp(prefix="mpq-ray-")

    @ray.remote(num_cpus=1, max_retries=2)
    def measure(index: int, part) -> str:
        out = os.path.join(work, f"shard-{index}.json")
        run_mpq(mpq, mpq_script(setup, part, out), cwd, threads="1")
        return out

    files = ray.get([measure.remote(i, p) for i, p in enumerate(parts) if p])
    ray.shutdown()
    # The merge runs here, through mpq: it checks each shard's key and entries.
    run_mpq(mpq, mpq_script(setup, [], cache, merge=files), cwd)
    for f in files:
        os.unlink(f)
    os.rmdir(work)
    print(f"ray-samples: {len(policies)} policies in {len(files)} shards merged into {a.cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
