"""The zoo's CNN and ResNet-20 (Sources/Network/Zoo.swift) in PyTorch, module paths as our state
dicts name them, and Fashion-MNIST as mpq normalises it: shared by the anchors that run PyTorch
(mct-ptq.py, torch-train.py)."""
import os, sys
import torch
import torch.nn as nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fmnist import MEAN, STD, fashion_mnist  # noqa: F401 (re-exported for the anchors)


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
