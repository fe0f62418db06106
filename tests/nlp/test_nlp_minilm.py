"""`minilm`: the real all-MiniLM-L6-v2, checked against sentence-transformers and transformers;
its task metrics against independent computations; pruned and compiled through the runtime."""
import json
import math

import numpy as np
import pytest
import torch

from prunebench import zoo
from prunebench.zoo import minilm as M

SENTENCE = "A man is playing a guitar on the stage."


@pytest.fixture(scope="module")
def dense():
    model, data = zoo.load("minilm")
    assert data is None
    return model


@pytest.fixture(scope="module")
def dense_embeddings(dense):
    return M.encode(dense, M.eval_texts())


@pytest.mark.slow
def test_parameter_count_equals_the_published_file(dense):
    # every weight of the package's safetensors except the pooler (mean pooling never reads
    # it) and the position_ids index buffer
    from safetensors import safe_open

    with safe_open(str(M.model_dir() / "model.safetensors"), "pt") as f:
        total = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()
                    if "pooler" not in k and not k.endswith("position_ids"))
    assert zoo.count_params(dense) == total == 22_565_376


@pytest.mark.slow
def test_embedding_matches_sentence_transformers(dense, monkeypatch):
    st = pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = st.SentenceTransformer(str(M.model_dir()), device="cpu").encode(
        [SENTENCE, M.lee_documents()[3]])
    ours = M.encode(dense, [SENTENCE, M.lee_documents()[3]])
    cos = (ours * ref).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
    assert cos.min() > 0.999
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.slow
def test_embedding_matches_transformers_with_numpy_pooling(dense, monkeypatch):
    tr = pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = str(M.model_dir())
    tok = tr.AutoTokenizer.from_pretrained(path)
    hf = tr.AutoModel.from_pretrained(path).eval()
    enc = tok([SENTENCE, "short one"], padding=True, truncation=True, max_length=256,
              return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**enc).last_hidden_state.numpy()
    mask = enc["attention_mask"].numpy()[..., None]
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    ref = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    # the same token ids from our tokenizer path, then our encoder
    assert torch.equal(M.tokenize([SENTENCE, "short one"]), enc["input_ids"])
    ours = M.encode(dense, [SENTENCE, "short one"])
    assert ((ours * ref).sum(1)).min() > 0.999


def test_lee_and_polarity_data():
    assert len(M.lee_documents()) == 50
    sim = M.lee_similarities()
    assert sim.shape == (50, 50) and np.allclose(np.diag(sim), 1.0)
    assert len(M.upper_pairs(sim)[0]) == 1225
    texts, labels = M.polarity()
    assert len(texts) == 200 and labels.sum() == 100


@pytest.mark.slow
def test_dense_task_metrics_against_independent_references(dense, dense_embeddings):
    import pandas as pd

    m = zoo.task_metrics("minilm", dense)
    # independent: pandas' correlations over the pairs, numpy cosines
    emb = dense_embeddings[:50]
    sim = M.lee_similarities()
    cos, human = [], []
    for i in range(50):
        for j in range(i + 1, 50):
            cos.append(float(emb[i] @ emb[j]) / float(np.linalg.norm(emb[i]) *
                                                     np.linalg.norm(emb[j])))
            human.append(sim[i, j])
    s_cos, s_h = pd.Series(cos), pd.Series(human)
    # float32 embeddings: the two paths agree to float32 rounding
    assert m["lee_spearman"] == pytest.approx(s_cos.corr(s_h, method="spearman"), abs=1e-6)
    assert m["lee_pearson"] == pytest.approx(s_cos.corr(s_h), abs=1e-6)
    assert m["fidelity_cosine"] == 1.0 and m["n_lee_pairs"] == 1225
    # our measured baseline (README): Lee Spearman 0.508, Pearson 0.656, polarity 76.5%
    assert m["lee_spearman"] == pytest.approx(0.508, abs=0.005)
    assert m["lee_pearson"] == pytest.approx(0.656, abs=0.005)
    assert m["polarity_accuracy"] == pytest.approx(0.765, abs=0.011)
    # the probe beats chance and the majority class by far (the data is balanced)
    assert m["polarity_accuracy"] > 0.7


@pytest.mark.slow
def test_pruned_minilm_compiles_to_the_same_embeddings(dense):
    from prunebench import compile as pb_compile
    from prunebench.pruning import prunable_layers, prune

    x = zoo.get_spec("minilm").example_input(3, seed=5)
    assert x.shape == (3, 128) and bool((x != 0).all())
    for method, fmt, kw in [("magnitude", "csr", {}), ("block", "bsr", {}), ("nm", "nm", {})]:
        r = prune(dense, method, 0.5, layers=prunable_layers(dense), example_input=x[:1])
        rep = r.report()
        assert len(rep["pruned_layers"]) == 36 and rep["sparsity_achieved"] == pytest.approx(0.5)
        pruned = r.model
        run = pb_compile(pruned, fmt, engine="native", example_input=x[:1], **kw)
        with torch.inference_mode():
            got, ref = torch.as_tensor(run(x)), pruned(x)
        assert (got - ref).abs().max() < 1e-5, method
        # every attention and FFN projection runs on the format, none stayed dense
        assert not run.summary()["dense_reasons"], run.summary()["dense_reasons"]


@pytest.mark.slow
def test_fidelity_of_a_pruned_model(dense, dense_embeddings):
    from prunebench.pruning import prunable_layers, prune

    pruned = prune(dense, "magnitude", 0.3, layers=prunable_layers(dense)).model
    m = M.task_metrics(pruned, dense_embeddings=dense_embeddings)
    assert 0.5 < m["fidelity_cosine"] < 1.0
    # independent: cosines of the two models' embeddings of the same texts, computed here
    a, b = M.encode(pruned, M.eval_texts()), dense_embeddings
    ref = np.mean([float(u @ v) / float(np.linalg.norm(u) * np.linalg.norm(v))
                   for u, v in zip(a, b)])
    assert m["fidelity_cosine"] == pytest.approx(ref, abs=1e-6)


@pytest.mark.slow
def test_distillation_raises_fidelity(dense):
    from prunebench.pruning import prunable_layers, prune

    r = prune(dense, "magnitude", 0.7, layers=prunable_layers(dense))
    model = r.model
    probe = list(M.polarity()[0][:24])   # not in the distillation text
    ref = M.encode(dense, probe)
    before = float((M.encode(model, probe) * ref).sum(1).mean())
    losses = M.distill(model, dense, r.masks, steps=12, batch_size=8, max_length=48, lr=1e-4)
    after = float((M.encode(model, probe) * ref).sum(1).mean())
    assert len(losses) == 12 and after > before + 0.01
    # pruned weights stayed exactly zero
    for name, mask in r.masks.items():
        assert not model.get_parameter(name)[~mask].any()


@pytest.mark.slow
def test_cli_prune_reports_metrics(capsys):
    from prunebench.cli import main

    code = main(["prune", "minilm", "--method", "nm", "--layers", "all", "--finetune-steps",
                 "0", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    doc = json.loads(cap.out)
    assert set(doc["metrics"]) >= {"lee_spearman", "lee_pearson", "polarity_accuracy",
                                   "fidelity_cosine"}
    assert doc["sparsity_achieved"] == pytest.approx(0.5)
    assert 0 < doc["metrics"]["fidelity_cosine"] < 1


@pytest.mark.slow
def test_cli_bench_reports_metrics_and_stores_them(capsys, tmp_path):
    from prunebench.cli import main
    from prunebench.study.store import Store

    db = tmp_path / "r.sqlite"
    code = main(["bench", "minilm", "--json", "--no-rss", "--min-runs", "3", "--min-time",
                 "0.01", "--warmup", "1", "--db", str(db)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    doc = json.loads(cap.out)
    assert doc["model"] == "minilm" and "latency_ms" in doc and doc["accuracy"] == "n/a"
    assert doc["metrics"]["lee_spearman"] == pytest.approx(0.508, abs=0.005)
    assert doc["metrics"]["fidelity_cosine"] == 1.0
    with Store(str(db)) as store:
        rows = store.rows()
    assert rows[0]["extra"]["metrics"] == doc["metrics"]
