"""`lee-charlstm`: data, the unigram baseline, bits per character against a step-by-step
reference, a tiny model that learns, and the pruned step compiled through the runtime. The
zoo's full model (1024 units, minutes of training) is not trained here."""
import collections
import math

import numpy as np
import pytest
import torch

from prunebench import zoo
from prunebench.zoo import charlstm as C

TINY = C.CharTrainConfig(hidden=48, embed=16, steps=60, batch_size=16, seq_len=64, lr=3e-2)


@pytest.fixture(scope="module")
def corpus():
    return C.corpus()


@pytest.fixture(scope="module")
def tiny(corpus):
    torch.manual_seed(0)
    model = C.CharLSTM(TINY.hidden, TINY.embed)
    losses = C.train(model, corpus[0], TINY, seed=0)
    return model, losses


def test_zoo_entry_shape():
    spec = zoo.get_spec("lee-charlstm")
    model = zoo.build("lee-charlstm")
    # the recurrent matrix alone is 16 MiB of fp32: beyond any L2
    assert model.lstm.weight_hh_l0.shape == (4 * 1024, 1024)
    assert model.lstm.weight_hh_l0.numel() * 4 == 16 * 2 ** 20
    x = spec.example_input(2, seed=0)
    assert x.shape == (2, 1 + 2 * 1024)
    assert model(x).shape == (2, C.VOCAB + 2 * 1024)


def test_corpus_split_and_unigram_baseline(corpus):
    train, test = corpus
    raw = "\n".join(line.strip() for line in C._read_background().splitlines() if line.strip())
    assert len(train) + len(test) == len(raw)
    assert len(test) == len(raw) - int(len(raw) * 0.9)
    # independent: Counter over the characters, add-one smoothing over the vocabulary
    known = set(C.CHARS[1:])
    sym = lambda ch: ch if ch in known else "\x00"  # noqa: E731
    cut = int(len(raw) * 0.9)
    counts = collections.Counter(sym(ch) for ch in raw[:cut])
    total = cut + C.VOCAB
    ref = -sum(math.log2((counts[sym(ch)] + 1) / total) for ch in raw[cut:]) / len(raw[cut:])
    assert C.unigram_bits_per_char(train, test) == pytest.approx(ref, rel=1e-9)
    assert 4.3 < ref < 4.6


def test_bits_per_char_matches_step_by_step_generation(tiny, corpus):
    model, _ = tiny
    text = corpus[1][:300]
    got = C.bits_per_char(model, text, streams=1)
    # independent path: the zoo entry's one-step forward, state fed back by hand
    H = model.hidden
    h = torch.zeros(1, H)
    c = torch.zeros(1, H)
    nats = 0.0
    with torch.no_grad():
        for i in range(len(text) - 1):
            y = model(C.step_input(torch.tensor([text[i]]), h, c))
            logits, h, c = y[:, :C.VOCAB], y[:, C.VOCAB:C.VOCAB + H], y[:, C.VOCAB + H:]
            nats -= float(torch.log_softmax(logits.double(), 1)[0, text[i + 1]])
    assert got == pytest.approx(nats / (len(text) - 1) / math.log(2), rel=1e-4)


def test_tiny_model_learns_below_the_unigram_baseline(tiny, corpus):
    model, losses = tiny
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    bpc = C.bits_per_char(model, corpus[1])
    assert bpc < C.unigram_bits_per_char(*corpus) - 0.5


def test_task_metrics_hook(tiny):
    model, _ = tiny
    m = zoo.task_metrics("lee-charlstm", model)
    assert set(m) >= {"bits_per_char", "unigram_bits_per_char", "held_out_chars"}
    assert zoo.task_metrics("mnist1d-mlp", model) is None


def test_pruned_step_compiles_to_the_same_output(tiny):
    from prunebench import compile as pb_compile
    from prunebench.pruning import prune

    model, _ = tiny
    x = C.example_input(3, seed=1, hidden=model.hidden)
    r = prune(model, "magnitude", 0.9, example_input=x[:1])
    rep = r.report()
    assert rep["pruned_layers"] == ["lstm", "head"]
    assert rep["sparsity_achieved"] == pytest.approx(0.9, abs=0.01)
    # masked recovery training keeps the pruned weights at exactly zero
    from dataclasses import replace

    C.train(r.model, C.corpus()[0], replace(TINY, steps=3), masks=r.masks)
    for name, mask in r.masks.items():
        assert not r.model.get_parameter(name)[~mask].any(), name
    for fmt in ("csr", "bitmap"):
        run = pb_compile(r.model, fmt, engine="native", example_input=x[:1])
        with torch.inference_mode():
            got, ref = torch.as_tensor(run(x)), r.model(x)
        assert (got - ref).abs().max() < 1e-5
    # streaming generation through the compiled step runs and times every character
    t = C.step_latency(run, model.hidden, steps=5, warmup=1)
    assert t.shape == (5,) and (t > 0).all()
