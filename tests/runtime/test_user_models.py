"""Architectures the zoo does not have, through prune -> compile (every engine that takes the
model) -> verify against the pruned dense model (issue 15).

The reference is always PyTorch's own dense forward of the pruned model (under inference
mode, so its fused attention fast paths run when PyTorch takes them); MACs are checked
against hand counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import prunebench as pb
from prunebench.errors import BadInputError, PrunebenchError

# Hugging Face models are among the architectures (built from local configs, no download)
transformers = pytest.importorskip("transformers")

SPARSE_ENGINES = ("native", "torch-sparse", "scipy")


# ---------------------------------------------------------------- the architectures


class Head(nn.Module):
    """Sequence model -> the last step's features -> classes (RNNs return tuples)."""

    def __init__(self, rnn: nn.Module, features: int, batch_first: bool = True):
        super().__init__()
        self.rnn, self.fc, self.batch_first = rnn, nn.Linear(features, 5), batch_first

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.fc(out[:, -1] if self.batch_first else out[-1])


def transformer(batch_first: bool) -> nn.Module:
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=batch_first)
    return nn.Sequential(nn.Linear(12, 32),
                         nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                         nn.Linear(32, 5))


def separable_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),  # depthwise
        nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),                        # pointwise
        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(),
        nn.Conv2d(32, 24, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 5))


class GroupedResidual(nn.Module):
    """Grouped dilated convolution, BatchNorm and two residual adds."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.grouped = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=4)
        self.bn2 = nn.BatchNorm2d(16)
        self.inner = nn.Conv2d(16, 16, 1)
        self.expand = nn.Conv2d(16, 24, 3, padding=1)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = x + torch.relu(self.bn2(self.grouped(x)))
        x = torch.relu(self.inner(x)) + x
        return self.fc(torch.relu(self.expand(x)).mean((2, 3)))


class SharedMLP(nn.Module):
    """``b`` reuses ``a``'s weight matrix (one Parameter, two modules, two biases)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(10, 24)
        self.a = nn.Linear(24, 24)
        self.b = nn.Linear(24, 24)
        self.b.weight = self.a.weight
        self.out = nn.Linear(24, 5)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        h = torch.relu(self.a(h))
        return self.out(torch.relu(self.b(h)) + h)


class TiedDecoder(nn.Module):
    """A causal decoder whose output projection is its input embedding (weight tying)."""

    def __init__(self, vocab: int = 40, dim: int = 32, steps: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(steps, dim) * 0.1)
        self.block = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.0, batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(steps))

    def forward(self, ids):
        h = self.embed(ids) + self.pos[:ids.shape[1]]
        n = ids.shape[1]
        h = self.block(h, src_mask=self.mask[:n, :n], is_causal=True)
        return self.lm_head(self.norm(h))


class LastHidden(nn.Module):
    """A Hugging Face model called on token ids, returning one field of its output."""

    def __init__(self, model, field, mask=True):
        super().__init__()
        self.model, self.field, self.mask = model, field, mask

    def forward(self, ids):
        # an explicit attention mask: without one, transformers looks for packed sequences
        # with torch.diff, which neither the ONNX exporter nor OpenVINO converts
        mask = torch.ones_like(ids) if self.mask else None
        return getattr(self.model(input_ids=ids, attention_mask=mask), self.field)


def gpt2():
    """A tiny GPT-2 (its linear layers are transformers' Conv1D, weight stored [in, out]),
    built from a local config, lm_head tied to the token embedding."""
    import transformers

    cfg = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                                  n_inner=64, bos_token_id=0, eos_token_id=0, use_cache=False)
    return LastHidden(transformers.GPT2LMHeadModel(cfg), "logits")


def bert():
    import transformers

    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=16)
    return LastHidden(transformers.BertModel(cfg), "last_hidden_state")


def _inputs(kind: str, n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return {"seq12": lambda: torch.randn(n, 7, 12, generator=g),
            "seq12-first": lambda: torch.randn(7, n, 12, generator=g),
            "img": lambda: torch.randn(n, 3, 10, 10, generator=g),
            "seq6": lambda: torch.randn(n, 9, 6, generator=g),
            "vec": lambda: torch.randn(n, 10, generator=g),
            "ids": lambda: torch.randint(0, 40, (n, 8), generator=g)}[kind]()


CASES = {
    "transformer-batch-first": (lambda: transformer(True), "seq12"),
    "transformer-seq-first": (lambda: transformer(False), "seq12-first"),
    "separable-cnn": (separable_cnn, "img"),
    "grouped-residual-cnn": (GroupedResidual, "img"),
    "bigru-2-layer": (lambda: Head(nn.GRU(6, 10, 2, batch_first=True, bidirectional=True), 20),
                      "seq6"),
    "lstm-projections": (lambda: Head(nn.LSTM(6, 16, batch_first=True, proj_size=8), 8), "seq6"),
    "shared-weight-mlp": (SharedMLP, "vec"),
    "tied-decoder": (TiedDecoder, "ids"),
    "gpt2-conv1d": (gpt2, "ids"),
    "bert-local": (bert, "ids"),
}


def _build(name: str):
    torch.manual_seed(0)
    make, kind = CASES[name]
    model = make().eval()
    for m in model.modules():           # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model, _inputs(kind)


def _reference(model, *args):
    """PyTorch's dense forward, under inference mode (its fused fast paths allowed)."""
    with torch.inference_mode():
        return model(*args)


# ---------------------------------------------------------------- prune -> compile -> verify


@pytest.mark.parametrize("name", list(CASES))
def test_pruned_user_model_runs_sparse_on_every_runtime_engine(name):
    model, x = _build(name)
    result = pb.prune(model, "magnitude", 0.7, layers="all", example_input=x)
    pruned = result.model
    rep = result.report()
    assert rep["sparsity_achieved"] == pytest.approx(0.7, abs=0.01)
    for row in rep["layers"]:       # every pruned layer's MACs are counted
        assert row["pruned"] and row["macs"] > 0 and 0 < row["macs_nonzero"] < row["macs"], row
    for engine in SPARSE_ENGINES:
        run = pb.compile(pruned, "csr", engine=engine, fallback="dense")
        sparse = [n for n, r in run.plan.items() if r["format"] == "csr"]
        assert sparse, f"{engine}: nothing runs sparse"
        assert run.sparse_layers()
        v = pb.verify(run, pruned, x)
        assert v.ok and v.rel_max < 1e-5, (engine, v)
    if name in ("transformer-batch-first", "transformer-seq-first", "tied-decoder"):
        # q, k and v of every attention layer run sparse
        attn = [n for n, r in run.plan.items() if r["kind"] == "attention"]
        assert attn and all(run.plan[n]["format"] == "csr" for n in attn)


@pytest.mark.parametrize("name", ["transformer-batch-first", "transformer-seq-first",
                                  "separable-cnn", "grouped-residual-cnn", "shared-weight-mlp"])
def test_whole_graph_engines_run_or_refuse_in_one_line(name):
    model, x = _build(name)
    pruned = pb.prune(model, "magnitude", 0.7, layers="all", example_input=x).model
    run = pb.compile(pruned, "csr", engine="openvino", example_input=x, fallback="dense")
    assert pb.verify(run, pruned, x).ok
    # every layer the plan runs sparse is a custom operation in OpenVINO's graph
    assert run.op_counts().get("Reference", 0) >= 1
    if name.startswith("transformer"):
        # attention and its out_proj stay OpenVINO's (fused) dense kernels, with the reason
        assert "MultiheadAttention" in run.plan["1.layers.0.self_attn.in_proj_weight[0]"]["reason"]
        assert "out_proj" in run.plan["1.layers.0.self_attn.out_proj.weight"]["reason"]
        with pytest.raises(BadInputError, match="in_proj_weight.*cannot run format 'csr' on "
                                                "engine openvino"):
            pb.compile(pruned, "csr", engine="openvino", example_input=x)
    if name == "transformer-seq-first":
        ort = pb.compile(pruned, "dense", engine="onnxruntime")
        with pytest.raises(PrunebenchError, match=r"onnxruntime cannot run input shape "
                                                  r"\(7, 3, 12\).*only dim 0 is dynamic"):
            ort(x)
    else:
        ort = pb.compile(pruned, "coo", engine="onnxruntime", example_input=x)
        assert pb.verify(ort, pruned, x).ok


# ---------------------------------------------------------------- save, load in a fresh process


LOAD_ALL = """
import json, sys
import numpy as np, torch
import prunebench as pb
folder, names = sys.argv[1], sys.argv[2:]
out = {}
for name in names:
    model, manifest = pb.load(f"{folder}/{name}.pbz")
    with torch.no_grad():
        y = model(torch.from_numpy(np.load(f"{folder}/{name}.x.npy"))).numpy()
    want = np.load(f"{folder}/{name}.y.npy")
    out[name] = [type(model).__name__, manifest["kind"], list(y.shape) == list(want.shape)
                 and float(np.abs(y - want).max())]
foreign = sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "tests")
                 or "test_user_models" in m)
print(json.dumps({"models": out, "foreign": foreign}))
"""


def test_every_architecture_saves_and_loads_in_a_fresh_process(tmp_path):
    """Each pruned architecture saved as a graph file; one child process, which never
    imports the classes (nor transformers), loads them all and matches the outputs this
    process computed with PyTorch's dense forward of the pruned model."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    for name in CASES:
        model, x = _build(name)
        pruned = pb.prune(model, "magnitude", 0.7, layers="all", example_input=x).model
        if name == "transformer-seq-first":
            # the graph is traced on example_input[:1] and only dim 0 is dynamic, which here
            # is the sequence: the file runs the traced shape (1 step, batch 3) only
            x = x[:1]
        plan = pb.save(tmp_path / f"{name}.pbz", pruned, format="csr", example_input=x)
        assert any(row["format"] == "csr" for row in plan.values()), name
        np.save(tmp_path / f"{name}.x.npy", x.numpy())
        np.save(tmp_path / f"{name}.y.npy", _reference(pruned, x).numpy())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p.endswith("src")))
    r = subprocess.run([sys.executable, "-c", LOAD_ALL, str(tmp_path), *CASES], cwd="/",
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["foreign"] == []
    for name, (kind, manifest_kind, max_abs) in doc["models"].items():
        assert (kind, manifest_kind) == ("GraphModel", "graph"), name
        assert max_abs is not False and max_abs < 1e-4, (name, max_abs)
    assert sorted(doc["models"]) == sorted(CASES)


# ---------------------------------------------------------------- attention


def test_attention_macs_are_counted_per_projection_and_token():
    model, x = _build("transformer-batch-first")
    rep = pb.prune(model, "magnitude", 0.5, layers="all", example_input=x).report()
    rows = {r["name"]: r for r in rep["layers"]}
    T, E = 7, 32                    # tokens per sample, embedding size
    assert rows["1.layers.0.self_attn.in_proj_weight"]["macs"] == 3 * T * E * E
    assert rows["1.layers.0.self_attn.out_proj.weight"]["macs"] == T * E * E
    pruned_w = model.get_parameter("1.layers.0.self_attn.in_proj_weight")
    assert pruned_w.shape == (3 * E, E)
    # nonzero MACs: each of q, k, v keeps half its weights, applied once per token
    assert rows["1.layers.0.self_attn.in_proj_weight"]["macs_nonzero"] == 3 * T * (E * E // 2)
    assert rows["1.layers.0.self_attn.out_proj.weight"]["macs_nonzero"] == T * (E * E // 2)


@pytest.mark.parametrize("kwargs,shapes", [
    (dict(batch_first=True), [(2, 5, 16)] * 3),
    (dict(), [(5, 2, 16), (6, 2, 16), (6, 2, 16)]),                        # cross-attention
    (dict(kdim=10, vdim=6, batch_first=True), [(2, 5, 16), (2, 4, 10), (2, 4, 6)]),
    (dict(add_bias_kv=True, add_zero_attn=True), [(5, 2, 16), (5, 2, 16), (5, 2, 16)]),
    (dict(), [(5, 16), (4, 16), (4, 16)]),                                   # unbatched
])
@pytest.mark.parametrize("call", [dict(), dict(need_weights=False),
                                  dict(average_attn_weights=False), "causal", "padding"])
def test_sparse_attention_equals_multihead_attention(kwargs, shapes, call):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, **kwargs).eval()
    with torch.no_grad():
        for p in mha.parameters():
            if p.dim() == 2 and p.shape[0] >= 16:
                p.mul_(torch.rand_like(p) > 0.6)
    q, k, v = (torch.randn(s) for s in shapes)
    batched = len(shapes[0]) == 3
    S = k.shape[1] if kwargs.get("batch_first") else k.shape[0]
    if call == "causal":
        if q.shape != k.shape:
            pytest.skip("a causal mask needs self-attention")
        call = dict(attn_mask=nn.Transformer.generate_square_subsequent_mask(S),
                    need_weights=False, is_causal=True)
    elif call == "padding":
        if not batched:
            pytest.skip("unbatched input has no padding mask")
        B = q.shape[0] if kwargs.get("batch_first") else q.shape[1]
        pad = torch.zeros(B, S, dtype=torch.bool)
        pad[0, -2:] = True
        call = dict(key_padding_mask=pad)

    class Call(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = mha

        def forward(self, q, k, v):
            return self.attn(q, k, v, **call)

    net = Call()
    run = pb.compile(net, "csr")
    assert type(run.model.attn).__name__ == "SparseMultiheadAttention"
    out, weights = run(q, k, v)
    ref, ref_weights = _reference(net, q, k, v)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    if ref_weights is None:
        assert weights is None
    else:
        torch.testing.assert_close(weights, ref_weights, rtol=0, atol=1e-6)


def test_only_out_proj_sparse_still_runs():
    """A sparse out_proj alone takes its attention module off the fused path too."""
    model, x = _build("transformer-batch-first")
    pruned = pb.prune(model, "magnitude", 0.8, example_input=x,
                      layers=["1.layers.0.self_attn.out_proj", "1.layers.1.linear1"]).model
    run = pb.compile(pruned, "csr")
    assert "1.layers.0.self_attn" in run.sparse_layers()
    assert pb.verify(run, pruned, x).ok


# ---------------------------------------------------------------- tied weights


def test_tied_weight_gets_one_mask_and_one_encoding():
    model, x = _build("shared-weight-mlp")
    result = pb.prune(model, "random", 0.8, layers=["a", "b"], example_input=x)
    w = result.model.a.weight
    assert result.model.b.weight is w
    zeros = float((w == 0).float().mean())
    # one mask: the zeros are the requested fraction, not 1 - 0.2 * 0.2 = 0.96
    assert list(result.masks) == ["a.weight"]
    assert zeros == pytest.approx(0.8, abs=1 / w.numel())
    assert result.report()["sparsity_achieved"] == pytest.approx(zeros)
    rows = {r["name"]: r for r in result.report()["layers"]}
    assert rows["a.weight"]["pruned"] and rows["b.weight"]["pruned"]

    layers, plan = pb.encode(result.model, "csr")
    assert "b.weight" not in plan and plan["a.weight"]["format"] == "csr"
    for engine in SPARSE_ENGINES:
        run = pb.compile(result.model, {"b.weight": "csr"}, engine=engine)
        assert run.plan["a.weight"]["modules"] == ["a", "b"]
        assert set(run.sparse_layers()) == {"a", "b"}
        assert pb.verify(run, result.model, x).ok
    run = pb.compile(result.model, "csr")
    assert run.model.a.op.fmt is run.model.b.op.fmt     # one encoding, two biases


def test_tied_embedding_and_output_projection():
    model, ids = _build("tied-decoder")
    result = pb.prune(model, "magnitude", 0.6, layers=["lm_head"], example_input=ids)
    pruned = result.model
    assert pruned.lm_head.weight is pruned.embed.weight
    assert list(result.masks) == ["embed.weight"]
    run = pb.compile(pruned, "csr")
    assert run.sparse_layers() == ["lm_head"]
    assert pb.verify(run, pruned, ids).ok


# ---------------------------------------------------------------- channel pruning


def test_channel_pruning_lists_layers_it_cannot_shrink():
    model, x = _build("grouped-residual-cnn")
    result = pb.prune(model, "channel", 0.5, layers="all", example_input=x)
    rep = result.report()
    skipped = {row["name"]: row["reason"] for row in rep["skipped"]}
    # the stem, the grouped conv and the inner conv share channels through the residual adds
    # and the grouped convolution; only `expand` can shrink (fc is the output layer)
    assert set(skipped) == {"stem", "grouped", "inner"}
    assert all("grouped convolution grouped (groups=4)" in why for why in skipped.values())
    assert rep["pruned_layers"] == ["expand"]
    assert result.model.expand.out_channels == 12 and result.model.fc.in_features == 12
    assert {r["module"]: r["pruned"] for r in rep["layers"]} == {
        "stem": False, "grouped": False, "inner": False, "expand": True, "fc": False}
    assert rep["sparsity_achieved"] == pytest.approx(0.5)
    assert pb.verify(pb.compile(result.model, "csr", fallback="dense"), result.model, x).ok
    with pytest.raises(BadInputError, match="can shrink none of the selected layers.*stem"):
        pb.prune(model, "channel", 0.5, layers=["stem"], example_input=x)


# ---------------------------------------------------------------- Hugging Face models


def _minilm_dir():
    from prunebench.zoo import minilm

    try:
        return minilm.model_dir()
    except BadInputError as e:      # the optional NLP extra is not installed
        pytest.skip(str(e))


def test_minilm_bert_from_automodel_runs_sparse(monkeypatch):
    """The real BERT that ``AutoModel`` builds from the MiniLM package's files (offline):
    magnitude 0.8 on every linear layer, equal to NumPy magnitude pruning of the file's
    weights, compiled on the engines that take it and verified against the pruned model."""
    import numpy as np
    from safetensors.numpy import load_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = _minilm_dir()
    net = LastHidden(transformers.AutoModel.from_pretrained(str(path)), "last_hidden_state")
    net.eval()
    ids = torch.randint(1, 30000, (2, 8), generator=torch.Generator().manual_seed(1))
    linear = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    assert len(linear) == 6 * 6 + 1                 # q, k, v, out, up, down per layer + pooler
    result = pb.prune(net, "magnitude", 0.8, layers=linear, example_input=ids)
    pruned = result.model
    raw = load_file(str(path / "model.safetensors"))
    for name in ("encoder.layer.0.attention.self.query.weight",
                 "encoder.layer.5.output.dense.weight"):
        W = raw[name].astype(np.float64)             # the reference: NumPy on the file
        k = int(round(0.8 * W.size))
        W.ravel()[np.argsort(np.abs(W).ravel(), kind="stable")[:k]] = 0
        got = pruned.get_parameter("model." + name).detach().numpy()
        assert ((got == 0) == (W == 0)).mean() > 0.9999       # ties at the threshold
        np.testing.assert_array_equal(got[W != 0], W[W != 0].astype(np.float32))
    assert all(r["macs"] == 8 * r["params"] for r in result.report()["layers"]
               if "pooler" not in r["name"])
    # the in-process engines here; the whole-graph ones (slower to convert at this size) run
    # the same BertModel code at a small size in test_transformers_models_built_offline
    for engine in ("native", "torch-sparse", "scipy"):
        run = pb.compile(pruned, "csr", engine=engine)
        assert len(run.sparse_layers()) == len(linear), engine
        v = pb.verify(run, pruned, ids)
        assert v.ok and v.rel_max < 1e-5, (engine, v)


@pytest.mark.parametrize("which", ["bert", "llama-tied"])
def test_transformers_models_built_offline(which):
    torch.manual_seed(0)
    if which == "bert":
        net = bert().eval()
    else:
        cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, max_position_embeddings=16,
                                       tie_word_embeddings=True)
        net = LastHidden(transformers.LlamaForCausalLM(cfg), "logits").eval()
    ids = _inputs("ids")
    result = pb.prune(net, "magnitude", 0.7, layers="all", example_input=ids)
    pruned = result.model
    assert all(r["macs"] for r in result.report()["layers"])
    if which == "llama-tied":
        assert pruned.model.lm_head.weight is pruned.model.model.embed_tokens.weight
        assert "model.model.embed_tokens.weight" in result.masks
    for engine in ("native", "torch-sparse"):
        run = pb.compile(pruned, "csr", engine=engine)
        assert len(run.sparse_layers()) >= 12
        assert pb.verify(run, pruned, ids).ok
    if which == "bert":
        # whole-graph engines: OpenVINO (the pooler's output is unused, so its sparse
        # operation leaves the graph, which is no error) and ONNX Runtime; LiteRT's token-id
        # input: tests/engines/test_litert_engine.py (its conversion is slow at this size)
        run = pb.compile(pruned, "csr", engine="openvino", example_input=ids)
        assert len(run.sparse_layers) == 13 and pb.verify(run, pruned, ids).ok
        run = pb.compile(pruned, "coo", engine="onnxruntime", example_input=ids)
        assert pb.verify(run, pruned, ids).ok


def test_gpt2_conv1d_is_pruned_along_its_transposed_weight():
    """Conv1D stores its weight [in, out]: N:M groups run along fan-in (dim 0 of the stored
    weight), MACs are tokens x in x out, and every engine runs the transpose."""
    import numpy as np

    model, ids = _build("gpt2-conv1d")
    conv1d = [n for n, m in model.named_modules()
              if isinstance(m, transformers.pytorch_utils.Conv1D)]
    assert len(conv1d) == 8
    result = pb.prune(model, "nm", 0.5, layers="all", example_input=ids)
    pruned = result.model
    rows = {r["module"]: r for r in result.report()["layers"]}
    for name in conv1d:
        W = model.get_submodule(name).weight.detach().numpy().T.astype(np.float64)  # [out, in]
        groups = np.abs(W).reshape(W.shape[0], -1, 4)              # 4 along fan-in
        keep = np.zeros_like(groups, dtype=bool)
        np.put_along_axis(keep, np.argsort(-groups, axis=2, kind="stable")[..., :2], True, 2)
        want = np.where(keep.reshape(W.shape), W, 0)                # NumPy 2:4, the reference
        got = pruned.get_submodule(name).weight.detach().numpy().T
        np.testing.assert_array_equal(got, want.astype(np.float32))
        out, fan_in = W.shape
        assert rows[name]["macs"] == 8 * fan_in * out               # 8 tokens per sample
        assert rows[name]["macs_nonzero"] == 8 * fan_in * out // 2
        assert rows[name]["outputs"] == out and rows[name]["inputs"] == fan_in
    assert pruned.model.lm_head.weight is pruned.model.transformer.wte.weight
    layers, plan = pb.encode(pruned, {n + ".weight": "nm" for n in conv1d})   # 2:4 as [out, in]
    for name in conv1d:
        np.testing.assert_array_equal(layers[name + ".weight"].to_dense(),
                                      pruned.get_submodule(name).weight.detach().numpy().T)
    for engine in SPARSE_ENGINES:
        run = pb.compile(pruned, "nm" if engine == "native" else "csr", engine=engine)
        assert set(conv1d) <= set(run.sparse_layers()), engine
        assert run.plan[conv1d[0] + ".weight"]["shape"] == [96, 32]     # [out, in]
        v = pb.verify(run, pruned, ids)
        assert v.ok and v.rel_max < 1e-5, (engine, v)
    # OpenVINO runs every sparse Conv1D as its own operation in the graph
    run = pb.compile(pruned, "csr", engine="openvino", example_input=ids)
    assert set(conv1d) <= set(run.sparse_layers)
    assert run.op_counts()["Reference"] == len(run.sparse_layers)
    assert pb.verify(run, pruned, ids).ok
    # without an attention mask transformers traces torch.diff, which OpenVINO cannot
    # convert: one line naming the operation
    pruned.mask = False
    with pytest.raises(PrunebenchError, match="openvino cannot convert LastHidden: .*aten::diff") \
            as e:
        pb.compile(pruned, "csr", engine="openvino", example_input=ids)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["transformer-batch-first", "shared-weight-mlp"])
def test_planner_takes_attention_and_tied_weights(name):
    model, x = _build(name)
    pruned = pb.prune(model, "magnitude", 0.8, layers="all", example_input=x).model
    planned = pb.plan(pruned, x[:1], threads=1)
    assert pb.verify(planned.compile(pruned), pruned, x).ok
    # a plan keyed by the second user of a tied weight reaches the weight
    if name == "shared-weight-mlp":
        assert pb.compile(pruned, {"b": "csr"}).plan["a.weight"]["format"] == "csr"
