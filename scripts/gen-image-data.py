#!/usr/bin/env python3
"""Writes a small CIFAR-shaped test set in the formats load_dataset reads (test-data generator).

Usage: gen-image-data.py OUT
OUT/npy/x.npy (uint8 [N, 32, 32, 3]) and OUT/npy/y.npy (int64 [N]); OUT/folder/<class>/*.png
holding exactly those images (PNG is lossless) plus one JPEG per class (OUT/jpeg-of.txt lists
which array row each JPEG holds, OUT/jpeg-decoded.npy their pixels as Pillow decodes them); OUT/mixed/a/ with a 32×32 and a 24×24 PNG (refused without a
resize). Images: seeded noise plus a class-dependent colour gradient, so a model can learn them.
Needs numpy and Pillow (scripts/setup installs Pillow).
"""
import os, sys
import numpy as np
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(7)
classes = ["cat", "dog", "ship"]
per = 12
xs, ys = [], []
for c in range(len(classes)):
    for i in range(per):
        base = np.zeros((32, 32, 3))
        base[..., c] = np.linspace(40, 215, 32)[None, :]
        img = np.clip(base + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
        xs.append(img); ys.append(c)
x = np.stack(xs); y = np.array(ys, dtype=np.int64)
os.makedirs(f"{out}/npy", exist_ok=True)
np.save(f"{out}/npy/x.npy", x); np.save(f"{out}/npy/y.npy", y)
jpegs = []
for n, (img, c) in enumerate(zip(x, y)):
    d = f"{out}/folder/{classes[c]}"
    os.makedirs(d, exist_ok=True)
    if n % per == 0:
        Image.fromarray(img).save(f"{d}/img{n:03d}.jpg", quality=95)
        jpegs.append(n)
    else:
        Image.fromarray(img).save(f"{d}/img{n:03d}.png")
with open(f"{out}/jpeg-of.txt", "w") as f:
    f.write(" ".join(map(str, jpegs)) + "\n")
# The JPEGs as Pillow decodes them (its own libjpeg-turbo): what mpq's decoding must give.
decoded = [np.asarray(Image.open(f"{out}/folder/{classes[y[n]]}/img{n:03d}.jpg").convert("RGB")) for n in jpegs]
np.save(f"{out}/jpeg-decoded.npy", np.stack(decoded))
os.makedirs(f"{out}/mixed/a", exist_ok=True)
Image.fromarray(x[0]).save(f"{out}/mixed/a/big.png")
Image.fromarray(x[1][:24, :24]).save(f"{out}/mixed/a/small.png")
print(f"{len(x)} images, {len(classes)} classes in {out}")
