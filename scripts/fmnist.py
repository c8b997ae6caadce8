"""Fashion-MNIST as mpq normalises it (numpy only): for the Python anchors."""
import gzip
import numpy as np

MEAN, STD = 0.286, 0.353  # ../shared/reference/fmnist_resnet20.json "preprocess"


def fashion_mnist(split):
    root = "/usr/share/datasets/fashion-mnist"
    stem = "train" if split == "train" else "t10k"
    with gzip.open(f"{root}/{stem}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{root}/{stem}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return ((x.astype(np.float32) / 255 - MEAN) / STD), y.astype(np.int64)
