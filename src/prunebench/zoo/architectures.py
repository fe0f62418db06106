"""Network definitions. Every model takes its dataset's ``x`` as is ([N, 40] for MNIST-1D,
[N, 64] for digits, [N, 3, 224, 224] or [N, 4096] for the latency-only models) and reshapes
inside ``forward``. ResNet-18 and MobileNetV2 follow torchvision's layouts (torchvision itself
does not import beside the pinned torch)."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class MLP1D(nn.Module):
    """MNIST-1D MLP 40-100-100-10 with a residual connection around the second layer."""

    def __init__(self, d_in: int = 40, hidden: int = 100, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        h = F.relu(self.fc2(h)) + h
        return self.fc3(h)


class CNN1D(nn.Module):
    """MNIST-1D CNN of the mnist1d reference: three Conv1d with 25 channels and stride 2, then
    one Linear over the flattened features."""

    def __init__(self, channels: int = 25, length: int = 40, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        with torch.no_grad():
            n = self._features(torch.zeros(1, 1, length)).shape[1]
        self.fc = nn.Linear(n, classes)

    def _features(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self._features(x.unsqueeze(1)))


class RNN1D(nn.Module):
    """MNIST-1D recurrent classifier: the 40 samples are a sequence of scalars; the last hidden
    state of each direction feeds a Linear head.

    An LSTM starts with its forget-gate bias at ``forget_bias`` (``b_ih + b_hh``; Gers et al.
    2000, Jozefowicz et al. 2015, Keras' ``unit_forget_bias``): with PyTorch's uniform bias
    init the gradient from the last step fades over the 40 steps and some seeds sit at chance
    for most of the training budget."""

    def __init__(self, cell: str = "gru", hidden: int = 32, bidirectional: bool = True,
                 classes: int = 10, forget_bias: float = 1.0):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(1, hidden, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(hidden * (2 if bidirectional else 1), classes)
        if cell == "lstm":
            with torch.no_grad():  # gate order i, f, g, o; draws nothing from the RNG
                for name, bias in self.rnn.named_parameters():
                    if name.startswith("bias_"):
                        bias[hidden:2 * hidden] = forget_bias if "_ih" in name else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1))
        h = self.rnn.hidden_size
        if self.rnn.bidirectional:
            last = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)
        else:
            last = out[:, -1]
        return self.fc(last)


class MLP(nn.Module):
    """Plain ReLU MLP: ``sizes`` = [in, hidden..., out] (LeNet-300-100 is [64, 300, 100, 10])."""

    def __init__(self, sizes: list[int], final_relu: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.final_relu = final_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1 or self.final_relu:
                x = F.relu(x)
        return x


class LeNet5(nn.Module):
    """LeNet-5 sized for 8x8 digits: two 3x3 convs with pooling, then 64-120-84-10."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# ---- ResNet-18 (He et al. 2016), torchvision layout -------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + idt)


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, c = [], 64
        for i, width in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(c, width, stride), BasicBlock(width, width)))
            c = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- MobileNetV2 (Sandler et al. 2018), torchvision layout ------------------------------------

def _conv_bn(c_in, c_out, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers = []
        if expand != 1:
            layers.append(_conv_bn(c_in, hidden, 1))                       # 1x1 expand
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),      # depthwise
                   _conv_bn(hidden, c_out, 1, act=False)]                    # 1x1 project
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]  # t, c, n, s

    def __init__(self, classes: int = 1000):
        super().__init__()
        c = 32
        feats = [_conv_bn(3, c, 3, 2)]
        for t, width, n, s in self.SETTINGS:
            for i in range(n):
                feats.append(InvertedResidual(c, width, s if i == 0 else 1, t))
                c = width
        feats.append(_conv_bn(c, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
