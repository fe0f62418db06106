"""A study with MiniLM stores its task metrics in the prune rows, and the report shows them
(Table 11 and a finding), with the dense row as the reference."""
import pytest

pytest.importorskip("tokenizers")

from prunebench.report import data as D  # noqa: E402
from prunebench.report import findings as F  # noqa: E402
from prunebench.study.runner import run_study  # noqa: E402
from prunebench.study.spec import validate  # noqa: E402
from prunebench.study.store import Store  # noqa: E402


@pytest.mark.slow
def test_minilm_study_rows_and_report_carry_task_metrics(tmp_path):
    spec = validate({"models": [{"name": "minilm", "layers": "all"}], "methods": ["magnitude"],
                     "sparsities": [0.5], "formats": ["dense"], "engines": ["torch-dense"],
                     "measure": {"warmup": 1, "min_runs": 3, "min_time": 0.0, "max_time": 0.1}},
                    source="minilm-tasks")
    summary = run_study(spec, tmp_path, progress=False)
    assert summary["failed"] == 0
    with Store(tmp_path / "results.sqlite") as store:
        rows = {r["sparsity"]: r for r in store.rows(kind="prune")}
    dense, pruned = rows[0.0]["extra"]["metrics"], rows[0.5]["extra"]["metrics"]
    assert dense["fidelity_cosine"] == pytest.approx(1.0)
    assert 0.3 < dense["lee_spearman"] < 0.7          # measured 0.508 (our dense baseline)
    assert 0 < pruned["fidelity_cosine"] < 0.99        # measured 0.686 at 50% one-shot
    tm = D.task_metrics_table(D.load(tmp_path / "results.sqlite"))
    assert list(tm.sparsity) == [0.0, 0.5]
    assert tm.lee_spearman.tolist() == pytest.approx([dense["lee_spearman"],
                                                      pruned["lee_spearman"]])
    share = pruned["lee_spearman"] / dense["lee_spearman"]
    texts = [f.text for f in F.task_findings(D.load(tmp_path / "results.sqlite"))]
    assert any(f"({share:.0%} of dense)" in t for t in texts), texts
    md = (tmp_path / "report.md").read_text()
    assert "Table 11: task metrics" in md and "lee spearman" in md


@pytest.mark.slow
def test_minilm_ffn_neurons_are_removed_structurally():
    """Channel pruning of the FFN up-projections removes half of each layer's 1536 neurons:
    the next projection shrinks with it, the model still embeds, and its task metrics are
    measured against the dense model (attention heads are not pruned structurally: torch-
    pruning would need the head layout)."""
    import prunebench as pb
    from prunebench import zoo

    model, _ = zoo.load("minilm")
    x = zoo.get_spec("minilm").example_input(1, 0)
    r = pb.prune(model, "channel", 0.5, layers=[f"layers.{i}.ffn_up" for i in range(6)],
                 example_input=x)
    for layer in r.model.layers:
        assert (layer.ffn_up.out_features, layer.ffn_down.in_features) == (768, 768)
    dense_params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in r.model.parameters()) == dense_params - 6 * (768 * 384 * 2 + 768)
    met = zoo.task_metrics("minilm", r.model, model)
    assert 0.3 < met["fidelity_cosine"] < 0.99      # measured 0.671
    assert met["lee_spearman"] > 0.3                # measured 0.526 (dense 0.508)
