import pytest
import torch

from prunebench.errors import VerificationError
from prunebench.runtime import TOLERANCE, verify


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))


def test_identical_model_passes_with_zero_error():
    net, x = _net(), torch.randn(100, 16)
    y = net(x).argmax(1)
    v = verify(net, net, x, y)
    assert v.ok and v.max_abs == 0.0 and v.top1_agreement == 1.0
    assert v.accuracy == v.accuracy_reference == 1.0


def test_reordered_float_sums_pass_fp32():
    net, x = _net(), torch.randn(100, 16)
    w1, b1, w2, b2 = (p.detach().double() for p in net.parameters())
    run = lambda xb: ((xb.double() @ w1.T + b1).relu() @ w2.T + b2).float()  # noqa: E731
    v = verify(run, net, x)
    assert v.ok and 0 <= v.rel_max < 1e-6


def test_wrong_weights_fail_with_numbers():
    net, x = _net(), torch.randn(100, 16)
    broken = _net()
    with torch.no_grad():
        broken[2].weight[0, 0] += 1.0
    with pytest.raises(VerificationError, match=r"max error .* above the fp32 tolerance"):
        verify(broken, net, x)
    v = verify(broken, net, x, raise_on_fail=False)
    assert not v.ok and v.max_abs == pytest.approx(
        float((broken(x) - net(x)).abs().max().detach()), rel=1e-6)


def test_lossy_encoding_reports_accuracy_delta_within_tolerance():
    net, x = _net(), torch.randn(200, 16)
    y = net(x).argmax(1)
    v = verify(lambda xb: net(xb) * (1 + 1e-3), net, x, y, values="fp16")
    assert v.ok and v.tolerance == TOLERANCE["fp16"]
    assert v.as_dict()["accuracy_delta"] == pytest.approx(v.accuracy - 1.0)


def test_nan_output_fails():
    net, x = _net(), torch.randn(10, 16)
    with pytest.raises(VerificationError, match="non-finite"):
        verify(lambda xb: net(xb) * float("nan"), net, x)
