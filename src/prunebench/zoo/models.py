"""The model zoo: a registry of :class:`ModelSpec` and :func:`load`, which builds a model and,
for models with a dataset, trains it once and caches the checkpoint."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, overload

import torch
from torch import nn

from ..errors import BadInputError, PrunebenchError
from ..registry import Registry
from . import architectures as A
from . import user
from .cache import cache_dir
from .datasets import Dataset, load_dataset

MODELS: Registry[ModelSpec] = Registry("model")


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    """What a zoo entry is: how to build it, what it is trained on (``dataset`` None means a
    latency-only model with random weights), its input shape and training settings."""

    name: str
    build: Callable[[], nn.Module] = field(repr=False)
    dataset: str | None
    input_shape: tuple[int, ...]
    description: str
    train: TrainConfig | None = None
    # bump when the architecture changes so cached checkpoints are not reused
    revision: int = 1
    # weights that do not come from training on ``dataset``: ``(seed, progress) -> state_dict``
    # (a pretrained package's file, or a model trained by its own module and cached there);
    # :func:`load` always applies them
    weights: Callable[[int, bool], dict] | None = field(default=None, repr=False)
    # ``(batch, seed) -> input`` when random normal inputs are not what the model takes
    # (token ids, a packed recurrent state)
    make_input: Callable[[int, int], torch.Tensor] | None = field(default=None, repr=False)

    @property
    def trained(self) -> bool:
        return self.dataset is not None

    @property
    def pretrained(self) -> bool:
        """Real weights from ``weights`` (not random, not trained on ``dataset``)."""
        return self.weights is not None

    def example_input(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        if self.make_input is not None:
            return self.make_input(batch, seed)
        g = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *self.input_shape), generator=g)


def _add(spec: ModelSpec) -> None:
    MODELS.add(spec.name, spec)


_add(ModelSpec("mnist1d-mlp", lambda: A.MLP1D(), "mnist1d", (40,),
               "MLP 40-100-100-10, residual around layer 2", TrainConfig(6000, 1e-2, 100)))
# the width of the MNIST-1D lottery-ticket notebook (benchmarks/bench_lottery.py)
_add(ModelSpec("mnist1d-mlp500", lambda: A.MLP([40, 500, 500, 10]), "mnist1d", (40,),
               "MLP 40-500-500-10 (the MNIST-1D lottery-ticket notebook's width)",
               TrainConfig(6000, 1e-2, 100)))
_add(ModelSpec("mnist1d-cnn", lambda: A.CNN1D(), "mnist1d", (40,),
               "3 x Conv1d (25 ch, stride 2) + Linear", TrainConfig(6000, 1e-2, 100)))
_add(ModelSpec("mnist1d-gru", lambda: A.RNN1D("gru", 32, True), "mnist1d", (40,),
               "bidirectional GRU (32 units) + Linear", TrainConfig(1500, 1e-2, 100)))
# revision 2: forget-gate bias 1 at init (seed 2 stayed at chance for 1300 of 1500 steps)
_add(ModelSpec("mnist1d-lstm", lambda: A.RNN1D("lstm", 64, False), "mnist1d", (40,),
               "LSTM (64 units) + Linear", TrainConfig(1500, 1e-2, 100), revision=2))
_add(ModelSpec("digits-lenet300", lambda: A.MLP([64, 300, 100, 10]), "digits", (64,),
               "LeNet-300-100 on 8x8 digits (64-300-100-10)", TrainConfig(1500, 1e-3, 64)))
_add(ModelSpec("digits-lenet5", lambda: A.LeNet5(), "digits", (64,),
               "LeNet-5 (2 Conv2d + 3 Linear) on 8x8 digits", TrainConfig(800, 2e-3, 64)))
_add(ModelSpec("mlp-4096", lambda: A.MLP([4096, 4096, 4096, 4096]), None, (4096,),
               "3 x Linear 4096x4096"))
_add(ModelSpec("resnet18", lambda: A.ResNet18(), None, (3, 224, 224),
               "ResNet-18, ImageNet 224x224"))
_add(ModelSpec("mobilenetv2", lambda: A.MobileNetV2(), None, (3, 224, 224),
               "MobileNetV2, ImageNet 224x224"))


# NLP (the optional extra prunebench[nlp]): the architectures build without it; their weights,
# inputs and task data need it and say so when it is missing.
def _minilm_weights(seed: int, progress: bool) -> dict:
    from .minilm import pretrained_state

    return pretrained_state(seed, progress)


def _minilm_input(batch: int, seed: int) -> torch.Tensor:
    from .minilm import example_input

    return example_input(batch, seed)


def _charlstm_weights(seed: int, progress: bool) -> dict:
    from .charlstm import trained_state

    return trained_state(seed, progress)


def _charlstm_input(batch: int, seed: int) -> torch.Tensor:
    from .charlstm import example_input

    return example_input(batch, seed)


def _build_minilm() -> nn.Module:
    from .minilm import MiniLM

    return MiniLM()


def _build_charlstm() -> nn.Module:
    from .charlstm import CharLSTM

    return CharLSTM(1024)


_add(ModelSpec("minilm", _build_minilm, None, (128,),
               "all-MiniLM-L6-v2 sentence encoder (pretrained; 128 tokens in, 384-d out)",
               weights=_minilm_weights, make_input=_minilm_input))
_add(ModelSpec("lee-charlstm", _build_charlstm, None, (1 + 2 * 1024,),
               "char-level LSTM LM, 1024 units, trained on lee_background (one streaming step)",
               weights=_charlstm_weights, make_input=_charlstm_input))


def get_spec(name: str) -> ModelSpec:
    if isinstance(name, str) and name not in MODELS:  # a user model of the parent process
        user.register_from_env(name)
    return MODELS.get(name)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def checkpoint_key(spec: ModelSpec, seed: int) -> str:
    """Hash of everything that determines a trained checkpoint."""
    blob = json.dumps({"model": spec.name, "dataset": spec.dataset, "seed": seed,
                       "train": asdict(spec.train) if spec.train else None,
                       "revision": spec.revision, "torch": torch.__version__.split("+")[0]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_paths(spec: ModelSpec, seed: int) -> tuple[Path, Path]:
    d = cache_dir() / "checkpoints"
    stem = f"{spec.name}-s{seed}-{checkpoint_key(spec, seed)}"
    return d / f"{stem}.safetensors", d / f"{stem}.init.safetensors"


def build(name: str, seed: int = 0) -> nn.Module:
    """A fresh model with weights initialised from ``seed``."""
    spec = get_spec(name)
    torch.manual_seed(seed)
    model = spec.build().eval()
    # what finetune_defaults() reads (copies keep it); setattr: torch types a Module's
    # attributes as tensors and modules
    setattr(model, "prunebench_zoo_name", name)
    return model


def finetune_defaults(model: nn.Module | str) -> tuple[float, int]:
    """``(lr, batch_size)`` to fine-tune ``model`` (a zoo name, or a model built by the zoo)
    with: its own training recipe; Adam's usual 1e-3 and 128 for anything else."""
    from ..train import TRAIN_BATCH, TRAIN_LR

    name = model if isinstance(model, str) else getattr(model, "prunebench_zoo_name", None)
    spec = MODELS.get(name) if isinstance(name, str) and name in MODELS else None
    if spec is None or spec.train is None:
        return TRAIN_LR, TRAIN_BATCH
    return spec.train.lr, spec.train.batch_size


def _save_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def _load_state(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


#: seeds everywhere (CLI --seed, a spec's seeds, the API): numpy's legacy seeding takes at most
#: 2**32 - 1, torch's at most 2**64 - 1 and neither a negative one
SEED_MAX = 2**32 - 1


def check_seed(seed: object, name: str = "--seed") -> int:
    """``seed`` if it is an integer in [0, SEED_MAX]; BadInputError naming ``name`` if not."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise BadInputError(f"{name}: got {seed!r}; allowed: an integer in [0, {SEED_MAX}]")
    return seed


@overload
def load(name: str, trained: bool = ..., seed: int = ..., progress: bool = ...,
         return_init: Literal[False] = ...) -> tuple[nn.Module, Dataset | None]: ...


@overload
def load(name: str, trained: bool = ..., seed: int = ..., progress: bool = ..., *,
         return_init: Literal[True]) -> tuple[nn.Module, Dataset | None, dict[str, torch.Tensor]]:
    ...


def load(name: str, trained: bool = True, seed: int = 0, progress: bool = False,
         return_init: bool = False
         ) -> (tuple[nn.Module, Dataset | None]
               | tuple[nn.Module, Dataset | None, dict[str, torch.Tensor]]):
    """Build a zoo model and its dataset.

    Parameters
    ----------
    name : zoo name (``prunebench models`` lists them).
    trained : train (or load the cached checkpoint) when the model has a dataset. Models with
        their own ``weights`` (``minilm``, ``lee-charlstm``) always get them.
    seed : initialisation and training seed.
    return_init : also return the state at initialisation (for lottery-ticket rewinding).

    Returns
    -------
    (model, data) where data is a :class:`Dataset` or None for latency-only models;
    (model, data, init_state) when ``return_init``.

    Examples
    --------
    >>> model, data = load("mnist1d-cnn")          # doctest: +SKIP
    """
    check_seed(seed, "seed")
    spec = get_spec(name)
    model = build(name, seed)
    init_state = ({k: v.clone() for k, v in model.state_dict().items()} if return_init
                  else {})
    data = load_dataset(spec.dataset) if spec.dataset else None
    if spec.weights is not None:
        model.load_state_dict(spec.weights(seed, progress))
    elif trained and data is not None:
        ckpt, init_path = checkpoint_paths(spec, seed)
        if ckpt.exists():
            _load_state(model, ckpt)
        else:
            from ..train import fit

            cfg = spec.train
            if cfg is None:
                raise PrunebenchError(f"model {name}: has a dataset but no training settings")
            fit(model, data, steps=cfg.steps, lr=cfg.lr, batch_size=cfg.batch_size,
                weight_decay=cfg.weight_decay, seed=seed, progress=progress,
                description=f"train {name} seed {seed}")
            _save_state(model, ckpt)
            init_model = build(name, seed)
            _save_state(init_model, init_path)
    model.eval()
    if return_init:
        return model, data, init_state
    return model, data
