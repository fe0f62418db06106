"""`prunebench prune`: bad input is one line and exit 2; the JSON has the accounting keys."""
import json

import pytest

from prunebench.cli import main

BAD = [
    (["--sparsity", "1.0"], "sparsity"),
    (["--sparsity", "-0.1"], "sparsity"),
    (["--method", "nm", "--n", "4", "--m", "4"], "n"),
    (["--method", "block", "--block", "128x128"], "block"),
    (["--method", "block", "--block", "4by4"], "--block"),
    (["--method", "pagerank"], "unknown method 'pagerank'; valid:"),
    (["--schedule", "weekly"], "unknown schedule 'weekly'; valid:"),
    (["--scope", "planet"], "scope"),
    (["--layers", "fc9"], "fc9"),
    (["--finetune-steps", "-1"], "finetune_steps"),
    (["--seed", "x"], "--seed"),
    (["--finetune-lr", "0"], "--finetune-lr: got 0.0, expected a number in (0, 1]"),
    (["--finetune-batch", "0"], "--finetune-batch: got 0, expected an integer >= 1"),
    (["--finetune-epochs", "-2"], "--finetune-epochs: got -2.0"),
    (["--finetune-schedule", "step"], "--finetune-schedule: got 'step', expected one of"),
    (["--validation", "0.9"], "--validation: got 0.9, expected a fraction in [0, 0.5]"),
]


@pytest.mark.parametrize("args, needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_prune_bad_input(args, needle, capsys, tmp_path):
    out_file = tmp_path / "p.pbz"
    code = main(["prune", "mnist1d-mlp", "--finetune-steps", "0", "-o", str(out_file)] + args)
    cap = capsys.readouterr()
    assert code == 2, cap.err
    assert needle in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    assert not out_file.exists()


def test_prune_output_folder_missing(capsys, tmp_path):
    code = main(["prune", "mnist1d-mlp", "-o", str(tmp_path / "no" / "p.pbz")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_prune_json_accounting(capsys, tmp_path):
    out_file = tmp_path / "p.pbz"
    code = main(["prune", "digits-lenet300", "--sparsity", "0.8", "--scope", "global",
                 "--layers", "all", "--finetune-steps", "50", "--json", "-o", str(out_file)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    doc = json.loads(cap.out)
    for key in ("method", "sparsity_requested", "sparsity_achieved", "accuracy_dense",
                "accuracy_pruned", "accuracy_pruned_before_finetune", "layers"):
        assert key in doc
    assert doc["sparsity_requested"] == 0.8
    assert abs(doc["sparsity_achieved"] - 0.8) < 0.005
    sizes = {"layers.0.weight": 64 * 300, "layers.1.weight": 300 * 100, "layers.2.weight": 1000}
    assert {layer["name"]: layer["params"] for layer in doc["layers"]} == sizes
    nonzero = sum(layer["nonzero"] for layer in doc["layers"])
    assert nonzero == round(0.2 * sum(sizes.values()))
    # Linear MACs per sample equal the weight count; nonzero MACs the nonzero count
    assert all(layer["macs"] == layer["params"] and layer["macs_nonzero"] == layer["nonzero"]
               for layer in doc["layers"])
    # the pruned model file loads back to the same accuracy
    from prunebench.runtime import load_model
    from prunebench.train import evaluate
    from prunebench import zoo

    model, manifest = load_model(out_file)
    assert manifest["model"] == "digits-lenet300"
    assert evaluate(model, zoo.load_dataset("digits")) == pytest.approx(doc["accuracy_pruned"])


def test_prune_distill_flag_fine_tunes_from_the_dense_model(capsys):
    from prunebench.cli import main

    code = main(["prune", "digits-lenet300", "--sparsity", "0.9", "--finetune-steps", "30",
                 "--distill", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rep = json.loads(cap.out)
    assert rep["distill"] is True and rep["finetune_steps"] == 30
    assert rep["accuracy_pruned"] > rep["accuracy_pruned_before_finetune"]
