"""``lee-charlstm``: a character-level LSTM language model trained here on ``lee_background.cor``.

One LSTM layer with 1,024 units: its recurrent matrix alone is 4 x 1024 x 1024 fp32 = 16 MiB,
far beyond L2, so every generated character streams it from L3 or memory (the case where a
sparse format can win). Text: gensim's ``lee_background.cor`` (300 news articles, 360 kB, read
as a file from gensim's wheel); the last 10% of its characters are held out.

The model's ``forward`` is one streaming generation step, the way such a model is deployed:
input ``[batch, 1 + 2H]`` = (character id, h, c), output ``[batch, V + 2H]`` = (next-character
logits, h', c'). Latency of the zoo entry is therefore the per-character cost at batch 1.
:meth:`CharLSTM.sequence_logits` runs whole sequences (training, bits per character).

Metric: bits per character on the held-out text (cross-entropy in bits), against the unigram
baseline (the held-out text coded with the training text's character frequencies).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import BadInputError
from .cache import cache_dir

#: id 0 = any character outside the set (a few latin-1 symbols), then newline and printable ASCII
CHARS = "\x00\n" + "".join(chr(c) for c in range(32, 127))
VOCAB = len(CHARS)
HELD_OUT = 0.1


class CharLSTM(nn.Module):
    """Embedding -> LSTM(hidden) -> Linear(vocab)."""

    def __init__(self, hidden: int = 1024, embed: int = 64, vocab: int = VOCAB):
        super().__init__()
        self.hidden, self.vocab = hidden, vocab
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def sequence_logits(self, ids: torch.Tensor,
                        state: tuple[torch.Tensor, torch.Tensor] | None = None
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits ``[B, T, V]`` for ids ``[B, T]``, and the final (h, c)."""
        out, state = self.lstm(self.embed(ids.long()), state)
        return self.head(out), state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One generation step: ``[B, 1 + 2H]`` (char id, h, c) -> ``[B, V + 2H]``."""
        H = self.hidden
        if x.dim() != 2 or x.shape[1] != 1 + 2 * H:
            raise BadInputError(f"lee-charlstm: input shape {tuple(x.shape)}; expected "
                                f"[batch, {1 + 2 * H}] = (character id, h, c)")
        ids = x[:, :1].long()
        h = x[:, None, 1:1 + H].transpose(0, 1).contiguous()
        c = x[:, None, 1 + H:].transpose(0, 1).contiguous()
        out, (h1, c1) = self.lstm(self.embed(ids), (h, c))
        return torch.cat([self.head(out[:, 0]), h1[0], c1[0]], 1)


def step_input(ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Pack (ids [B], h [B, H], c [B, H]) as the step input of :meth:`CharLSTM.forward`."""
    return torch.cat([ids.float()[:, None], h, c], 1)


def example_input(batch: int = 1, seed: int = 0, hidden: int = 1024) -> torch.Tensor:
    """Seeded step inputs: a lowercase letter and a random non-zero state (so a check of the
    step also exercises the recurrent matrix)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(CHARS.index("a"), CHARS.index("z") + 1, (batch,), generator=g)
    h = torch.tanh(torch.randn(batch, hidden, generator=g))
    c = torch.randn(batch, hidden, generator=g)
    return step_input(ids, h, c)


# ------------------------------------------------------------------------------ data


def encode_text(text: str) -> np.ndarray:
    table = np.zeros(256, np.int64)
    for i, ch in enumerate(CHARS):
        table[ord(ch)] = i
    return table[np.frombuffer(text.encode("latin-1", "replace"), np.uint8)]


def _read_background() -> str:
    from .minilm import read_gensim_text

    return read_gensim_text("lee_background.cor")


def corpus() -> tuple[np.ndarray, np.ndarray]:
    """(train ids, held-out ids): ``lee_background.cor``'s documents joined by newlines, the
    last 10% of the characters held out."""
    ids = encode_text("\n".join(line.strip() for line in _read_background().splitlines()
                                if line.strip()))
    cut = int(len(ids) * (1 - HELD_OUT))
    return ids[:cut], ids[cut:]


def unigram_bits_per_char(train: np.ndarray, test: np.ndarray) -> float:
    """Bits per character of ``test`` under the character frequencies of ``train`` (add-one
    smoothing over the vocabulary): the baseline a language model must beat."""
    counts = np.bincount(train, minlength=VOCAB) + 1.0
    p = counts / counts.sum()
    return float(-np.log2(p[test]).mean())


# ------------------------------------------------------------------------------ train / eval


@dataclass(frozen=True)
class CharTrainConfig:
    hidden: int = 1024
    embed: int = 64
    steps: int = 120
    batch_size: int = 32
    seq_len: int = 100
    lr: float = 4e-3
    clip: float = 1.0


#: the zoo entry's training: about 5 minutes on 2 cores (measured; cached afterwards)
ZOO_CONFIG = CharTrainConfig()


def train(model: CharLSTM, ids: np.ndarray, cfg: CharTrainConfig, seed: int = 0,
          progress: bool = False, masks: dict[str, torch.Tensor] | None = None) -> list[float]:
    """Adam on random windows of ``ids`` (next-character cross-entropy, gradient norm clipped,
    learning rate decayed linearly to 10%). Returns the loss per step (nats).

    ``masks`` ({parameter: bool, True = kept}, as :func:`prunebench.prune` returns them) keeps
    pruned weights at zero: recovery training of a pruned model."""
    from ..pruning.masks import MaskKeeper

    with MaskKeeper(model, masks or {}) as keeper:
        return _train(model, ids, cfg, seed, progress, keeper)


def _train(model, ids, cfg, seed, progress, keeper) -> list[float]:
    from ..train import ProgressBar

    if len(ids) <= cfg.seq_len + 1:
        raise BadInputError(f"text: {len(ids)} characters, need more than {cfg.seq_len + 1}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = torch.from_numpy(ids)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 - 0.9 * s / max(1, cfg.steps))
    offsets = torch.arange(cfg.seq_len + 1)
    model.train()
    losses = []
    bar = ProgressBar(progress, "train lee-charlstm", cfg.steps)
    for _ in range(cfg.steps):
        starts = torch.randint(len(ids) - cfg.seq_len - 1, (cfg.batch_size, 1), generator=g)
        win = data[starts + offsets]
        logits, _ = model.sequence_logits(win[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, model.vocab), win[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        keeper.after_step()
        sched.step()
        losses.append(loss.item())
        bar.advance(losses[-1])
    bar.close()
    model.eval()
    return losses


@torch.inference_mode()
def bits_per_char(model: CharLSTM, ids: np.ndarray, streams: int = 32, chunk: int = 256) -> float:
    """Cross-entropy in bits per character of ``ids``: the text is cut into ``streams``
    contiguous pieces run side by side, the state carried through each piece from a zero
    state (the first character of a piece is predicted with no context)."""
    n = len(ids) // streams
    if n < 2:
        raise BadInputError(f"text: {len(ids)} characters for {streams} streams")
    x = torch.from_numpy(ids[:n * streams].reshape(streams, n))
    model.eval()
    state, total = None, 0.0
    for s in range(0, n - 1, chunk):
        inp, tgt = x[:, s:min(s + chunk, n - 1)], x[:, s + 1:min(s + chunk, n - 1) + 1]
        logits, state = model.sequence_logits(inp, state)
        total += float(F.cross_entropy(logits.reshape(-1, model.vocab), tgt.reshape(-1),
                                       reduction="sum"))
    return total / (streams * (n - 1)) / math.log(2)


def checkpoint_path(cfg: CharTrainConfig, seed: int) -> Path:
    blob = json.dumps({"model": "lee-charlstm", "cfg": asdict(cfg), "seed": seed,
                       "held_out": HELD_OUT, "chars": CHARS,
                       "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return cache_dir() / "checkpoints" / f"lee-charlstm-s{seed}-{key}.safetensors"


def trained_state(seed: int = 0, progress: bool = False,
                  cfg: CharTrainConfig = ZOO_CONFIG) -> dict[str, torch.Tensor]:
    """The trained weights: from the checkpoint cache, else trained now (minutes) and cached."""
    from safetensors.torch import load_file, save_file

    path = checkpoint_path(cfg, seed)
    if path.exists():
        return load_file(str(path))
    torch.manual_seed(seed)
    model = CharLSTM(cfg.hidden, cfg.embed)
    train(model, corpus()[0], cfg, seed=seed, progress=progress)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)
    return state


def task_metrics(model: nn.Module, dense_model: nn.Module | None = None
                 ) -> dict[str, float | int]:
    """``bits_per_char`` on the held-out text, with the unigram baseline beside it. Both
    models are a :class:`CharLSTM` (dense or pruned): the text runs through whole sequences."""
    tr, te = corpus()
    out: dict[str, float | int] = {"bits_per_char": bits_per_char(_charlstm(model), te),
                                   "unigram_bits_per_char": unigram_bits_per_char(tr, te),
                                   "held_out_chars": int(len(te))}
    if dense_model is not None:
        out["bits_per_char_dense"] = bits_per_char(_charlstm(dense_model), te)
    return out


def _charlstm(model: nn.Module) -> CharLSTM:
    if not isinstance(model, CharLSTM):
        raise BadInputError(f"model: bits per character runs a CharLSTM over whole sequences; "
                            f"got {type(model).__name__}")
    return model


def step_latency(run: Callable[[torch.Tensor], Any], model_hidden: int, steps: int = 200,
                 warmup: int = 20, seed: int = 0) -> np.ndarray:
    """Seconds per generated character of ``run`` (a CharLSTM or its compiled runnable) at
    batch 1, greedy generation feeding each step's state and argmax back in."""
    import time

    x = example_input(1, seed, model_hidden)
    H = model_hidden
    times = []
    with torch.inference_mode():
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            y = torch.as_tensor(run(x))
            times.append(time.perf_counter() - t0)
            nxt = y[:, :y.shape[1] - 2 * H].argmax(1)
            x = step_input(nxt, y[:, -2 * H:-H], y[:, -H:])
    return np.array(times[warmup:])
