"""The top-level API a user writes (DESIGN.md), end to end on a small trained model."""
import numpy as np
import torch

import prunebench as pb
import prunebench.measure  # noqa: F401  (binds pb.measure to the package, as any session does)


def test_public_api_end_to_end(tmp_path):
    model, data = pb.zoo.load("digits-lenet300")
    result = pb.prune(model, "magnitude", 0.9, scope="global", layers=["layers.0", "layers.1",
                                                                        "layers.2"])
    pruned = result.model
    nonzero = sum(int((p != 0).sum()) for n, p in pruned.named_parameters() if "weight" in n)
    assert nonzero == round(0.1 * (64 * 300 + 300 * 100 + 100 * 10))
    runnable = pb.compile(pruned, "csr", engine="native")
    v = pb.verify(runnable, pruned, data.x_test, data.y_test)
    assert v.ok and v.top1_agreement == 1.0 and v.rel_max < 1e-4
    m = pb.measure_latency(runnable, data.x_test[:1], min_runs=5, min_time=0, warmup=1)
    assert m.n >= 5 and m.median > 0
    pb.save(tmp_path / "m.pbz", pruned, zoo_name="digits-lenet300", format="csr")
    back, manifest = pb.load(tmp_path / "m.pbz")
    for (k, a), (_, b) in zip(pruned.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    layers, plan = pb.encode(pruned, "bitmap")
    w = pruned.layers[1].weight.detach().numpy()
    np.testing.assert_array_equal(layers["layers.1.weight"].to_dense(), w)
