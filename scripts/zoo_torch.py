"""The zoo's CNN and ResNet-20 (Sources/Network/Zoo.swift) in PyTorch, module paths as our state
dicts name them, and Fashion-MNIST as mpq normalises it: shared by the anchors that run PyTorch
(mct-ptq.py, torch-train.py)."""
import gzip
import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.286, 0.353  # ../shared/reference/fmnist_resnet20.json "preprocess"


def fashion_mnist(split):
    root = "/usr/share/datasets/fashion-mnist"
    stem = "train" if split == "train" else "t10k"
    with gzip.open(f"{root}/{stem}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{root}/{stem}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return ((x.astype(np.float32) / 255 - MEAN) / STD), y.astype(np.int64)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet20(nn.Module):
    """The zoo's resnet20 (Sources/Network/Zoo.swift), module paths as the state dict names them."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for b in range(9):
            cout, stride = [16, 32, 64][b // 3], (2 if b % 3 == 0 and b > 0 else 1)
            blocks.append(Block(cin, cout, stride))
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class CNN(nn.Module):
    """The zoo's cnn: 3×(conv3×3 + BN + ReLU + maxpool 2) with 16/32/64 channels, FC 576-128-10."""
    def __init__(self):
        super().__init__()
        for i, (cin, cout) in enumerate([(1, 16), (16, 32), (32, 64)]):
            setattr(self, f"conv{i + 1}", nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(cout))
        self.fc1 = nn.Linear(576, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        for i in range(1, 4):
            x = nn.functional.max_pool2d(torch.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))
