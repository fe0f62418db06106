"""Training, fine-tuning and evaluation loops (Adam + cross-entropy)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

import torch
from torch import nn
import torch.nn.functional as F

from .errors import BadInputError
from .recipe import (CHANCE_MARGIN, CHANCE_SIGMAS, FINETUNE_STEPS, LR_SCHEDULES, PATIENCE,
                     VALIDATION_FRACTION)


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInputError(f"{name}: got {value!r}, expected an integer >= 1")


#: knowledge distillation during fine-tuning ("function matching", Beyer et al. 2022: the
#: student matches the teacher on more inputs than the labelled ones). Measured on mnist1d-mlp,
#: 90% global magnitude, 3000 steps, mean gap to dense over seeds 0-2 / 3-5 / 6-8: labels alone
#: (200 steps) 6.5 points; distillation on the training inputs only (lr 1e-3) 2.37 / 1.57 / 1.77;
#: with the mixup and noisy copies below and lr 3e-3: 0.73 / -0.17 / -0.40 (chosen on seeds 0-2;
#: tests/pruning/test_pruning_zoo_mnist1d.py).
DISTILL_TEMPERATURE = 4.0
DISTILL_ALPHA = 0.9
DISTILL_LR = 3e-3
#: the noisy copy's noise, as a fraction of the batch's standard deviation
DISTILL_NOISE = 0.3
TRAIN_LR = 1e-3
TRAIN_BATCH = 128


class TrainSplit(Protocol):
    """What training reads of a dataset: a :class:`prunebench.zoo.Dataset`, or the part of
    one left to train on after the validation split (:func:`split_validation`)."""

    @property
    def x_train(self) -> torch.Tensor: ...

    @property
    def y_train(self) -> torch.Tensor: ...


class EvalSplit(Protocol):
    """What evaluation reads of a dataset (a :class:`prunebench.zoo.Dataset`)."""

    @property
    def x_test(self) -> torch.Tensor: ...

    @property
    def y_test(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class TrainPart:
    """The training examples left after the validation split."""

    x_train: torch.Tensor
    y_train: torch.Tensor


@dataclass(frozen=True)
class Finetune:
    """How a pruned model is fine-tuned (see :func:`finetune`).

    ``lr`` and ``batch_size`` None mean the model's own training recipe
    (:func:`prunebench.zoo.finetune_defaults`); ``epochs`` (when given) sets the step budget to
    that many passes over the fine-tuning examples; ``lr_schedule`` None is ``constant`` with
    labels and ``cosine`` with distillation; ``validation`` is the held-out fraction of the
    training split (0: none, then nothing is early-stopped and ``converged`` is None)."""

    steps: int = FINETUNE_STEPS
    lr: float | None = None
    batch_size: int | None = None
    epochs: float | None = None
    lr_schedule: str | None = None
    early_stop: bool = True
    validation: float = VALIDATION_FRACTION

    def checked(self) -> "Finetune":
        from .pruning.validate import check_int

        check_int("finetune_steps", self.steps, 0)
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(
                self.lr, (int, float)) or not 0 < self.lr <= 1):
            raise BadInputError(f"finetune_lr: got {self.lr!r}, expected a number in (0, 1]")
        if self.batch_size is not None:
            check_positive_int("finetune_batch", self.batch_size)
        if self.epochs is not None and (isinstance(self.epochs, bool) or not isinstance(
                self.epochs, (int, float)) or not 0 < self.epochs <= 1000):
            raise BadInputError(f"finetune_epochs: got {self.epochs!r}, expected a number in "
                                "(0, 1000]")
        if self.lr_schedule is not None and self.lr_schedule not in LR_SCHEDULES:
            raise BadInputError(f"finetune_schedule: got {self.lr_schedule!r}, expected one "
                                f"of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.early_stop, bool):
            raise BadInputError(f"early_stop: got {self.early_stop!r}, expected True or False")
        if isinstance(self.validation, bool) or not isinstance(self.validation, (int, float)) \
                or not 0 <= self.validation <= 0.5:
            raise BadInputError(f"validation: got {self.validation!r}, expected a fraction in "
                                "[0, 0.5]")
        return self

    def resolved(self, lr: float, batch_size: int, n_train: int, distill: bool) -> "Finetune":
        """Every setting filled in: the recipe's ``lr``/``batch_size`` where None, the step
        budget from ``epochs`` over ``n_train`` fine-tuning examples, the schedule."""
        lr = self.lr if self.lr is not None else lr
        batch = self.batch_size if self.batch_size is not None else batch_size
        steps = self.steps
        if self.epochs is not None:
            steps = max(1, math.ceil(self.epochs * n_train / batch))
        schedule = self.lr_schedule or ("cosine" if distill else "constant")
        return replace(self, steps=steps, lr=float(lr), batch_size=batch, epochs=None,
                       lr_schedule=schedule)

    def key(self) -> dict[str, Any]:
        """What changes a fine-tune's result, as plain data (for job hashes and reports)."""
        return {"steps": self.steps, "lr": self.lr, "batch_size": self.batch_size,
                "epochs": self.epochs, "lr_schedule": self.lr_schedule,
                "early_stop": self.early_stop, "validation": self.validation}


def split_validation(data: TrainSplit, fraction: float = VALIDATION_FRACTION
                     ) -> tuple[TrainSplit, torch.Tensor | None, torch.Tensor | None]:
    """``(fit_data, x_val, y_val)``: ``fraction`` of the training split held out (the same
    examples on every call: a fixed permutation), the rest to train on. ``fraction`` 0 gives
    the data unchanged and no validation set."""
    n = len(data.y_train)
    n_val = int(round(fraction * n))
    if n_val == 0 or n_val >= n:
        return data, None, None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    val, keep = perm[:n_val], perm[n_val:]
    fit_data = TrainPart(x_train=data.x_train[keep], y_train=data.y_train[keep])
    return fit_data, data.x_train[val], data.y_train[val]


def finetune(model: nn.Module, data: TrainSplit, recipe: Finetune, *, seed: int = 0,
             after_step: Callable[[], None] | None = None, watch_from: int = 0,
             progress: bool = False, description: str = "fine-tune",
             teacher: nn.Module | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` in place with a resolved ``recipe`` (:meth:`Finetune.resolved`)
    on the training split less its validation part, and say how it went.

    Validation accuracy is evaluated every ``eval_every`` steps (a twentieth of the budget, at
    least 5) from step ``watch_from`` on (``gradual`` passes the end of its ramp). Early
    stopping stops once the best validation accuracy is ``PATIENCE`` evaluations old and
    restores the weights of that evaluation.

    Returns ``{"steps_run", "best_step", "converged", "at_chance", "train_accuracy",
    "val_accuracy", "recipe"}``: ``converged`` is True when the validation accuracy reached
    its plateau (the best was at least PATIENCE evaluations before the end) clearly above
    chance (:func:`chance_threshold`), False when it was still improving when the budget ran
    out or when its best stayed at chance (then ``at_chance`` is True), None without a
    validation split; ``train_accuracy`` is on the examples trained on, both after the best
    weights are restored."""
    if recipe.batch_size is None:
        raise BadInputError("recipe: got batch_size None; expected a resolved recipe "
                            "(Finetune.resolved fills in the model's own)")
    fit_data, x_val, y_val = split_validation(data, recipe.validation)
    monitor = None
    if x_val is not None and y_val is not None:
        every = max(5, recipe.steps // 20)
        monitor = _Plateau(model, x_val, y_val, every, PATIENCE, watch_from,
                           stop=recipe.early_stop)
    fit(model, fit_data, steps=recipe.steps, lr=recipe.lr, batch_size=recipe.batch_size,
        seed=seed, after_step=after_step, progress=progress, description=description,
        teacher=teacher, lr_schedule=recipe.lr_schedule, monitor=monitor)
    out: dict[str, Any] = {"steps_run": recipe.steps, "best_step": None, "converged": None,
                           "at_chance": None, "val_accuracy": None, "recipe": recipe.key()}
    if monitor is not None:
        out.update(monitor.summary())
    out["train_accuracy"] = accuracy(model, fit_data.x_train, fit_data.y_train)
    return out


def chance_threshold(y: torch.Tensor) -> float:
    """The validation accuracy a classifier must exceed to be clearly above chance on labels
    ``y``: chance ``c`` (the share of the most common label, what a constant answer scores) plus
    the larger of ``CHANCE_MARGIN`` and ``CHANCE_SIGMAS`` binomial standard deviations
    ``sqrt(c (1 - c) / len(y))``. Ten balanced classes, 400 examples: 0.1 + 0.05 = 0.15."""
    c = float(torch.bincount(y).max()) / len(y)
    return c + max(CHANCE_MARGIN, CHANCE_SIGMAS * math.sqrt(c * (1 - c) / len(y)))


class _Plateau:
    """Validation accuracy every ``every`` steps from ``start`` on; keeps the best weights
    (a copy of the state dict) and says when the best is ``patience`` evaluations old."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, every: int,
                 patience: int, start: int = 0, stop: bool = True) -> None:
        self.model, self.x, self.y = model, x, y
        self.every, self.patience, self.start, self.stop = every, patience, start, stop
        self.best = -1.0
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since, self.step, self.stopped = 0, 0, False

    def __call__(self, step: int) -> bool:
        """After optimizer step ``step`` (1-based): True to stop training."""
        self.step = step
        if step < self.start or (step - self.start) % self.every:
            return False
        acc = accuracy(self.model, self.x, self.y)
        self.model.train()
        if acc > self.best:
            self.best, self.best_step, self.since = acc, step, 0
            self.best_state = {k: v.detach().clone()
                               for k, v in self.model.state_dict().items()}
        else:
            self.since += 1
        if self.stop and self.since >= self.patience:
            self.stopped = True
        return self.stopped

    def finish(self, last_step: int) -> None:
        """At the end: evaluate the last step too, then restore the best weights (early
        stopping only: without it the model stays as trained)."""
        if self.best_step != last_step and self.since < self.patience and \
                last_step >= self.start and (last_step - self.start) % self.every:
            self(last_step)
        if self.stop and self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def summary(self) -> dict[str, Any]:
        plateau = self.best_step is not None and self.since >= self.patience
        # a plateau at chance (a pruned network that no longer learns) is no convergence
        at_chance = self.best_step is not None and self.best <= chance_threshold(self.y)
        return {"steps_run": self.step, "best_step": self.best_step,
                "converged": bool(plateau and not at_chance), "at_chance": bool(at_chance),
                "val_accuracy": self.best if self.stop else accuracy(self.model, self.x, self.y)}


def transfer_batch(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The inputs a distilled student is matched to the teacher on, built from one labelled
    batch ``x`` and nothing else: ``x`` itself, a mixup of ``x`` with a shuffle of itself
    (per-example weight uniform in [0, 1]) and a copy with Gaussian noise of
    ``DISTILL_NOISE`` x the batch's standard deviation. Integer inputs (token ids) are
    returned as they are."""
    if not x.is_floating_point():
        return x
    lam = torch.rand((len(x),) + (1,) * (x.dim() - 1), generator=g)
    mixed = lam * x + (1 - lam) * x[torch.randperm(len(x), generator=g)]
    noisy = x + DISTILL_NOISE * x.std() * torch.randn(x.shape, generator=g)
    return torch.cat([x, mixed, noisy])


def fit(model: nn.Module, data: TrainSplit, *, steps: int, lr: float | None = None,
        batch_size: int = 128, seed: int = 0, weight_decay: float = 0.0,
        after_step: Callable[[], None] | None = None, progress: bool = False,
        description: str = "train", teacher: nn.Module | None = None,
        temperature: float = DISTILL_TEMPERATURE, alpha: float = DISTILL_ALPHA,
        lr_schedule: str | None = None, monitor: Callable[[int], bool] | None = None
        ) -> nn.Module:
    """Train ``model`` in place on ``data`` for ``steps`` mini-batches (Adam, cross-entropy).

    ``after_step`` runs after every optimizer step; pruning uses it to keep pruned weights at
    zero. Shuffling is driven by ``seed`` so runs are repeatable.

    ``lr`` defaults to ``TRAIN_LR``, or ``DISTILL_LR`` with a teacher.

    With a ``teacher`` (knowledge distillation, Hinton et al. 2015) the loss is
    ``alpha * T^2 * KL(softmax(teacher / T) || softmax(model / T))`` over
    :func:`transfer_batch` of each labelled batch (the batch, a mixup of it and a noisy copy)
    ``+ (1 - alpha) * CE`` on the labelled batch, and the learning rate decays to zero on a
    cosine; the teacher is only evaluated.

    ``lr_schedule`` (``constant`` or ``cosine``, to zero over ``steps``) defaults to cosine
    with a teacher and constant without. ``monitor(step)`` runs after every step (after
    ``after_step``); when it returns True training stops, and its ``finish(step)`` (if it has
    one) runs at the end (:func:`finetune`'s early stopping)."""
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if lr is None:
        lr = TRAIN_LR if teacher is None else DISTILL_LR
    if lr_schedule is None:
        lr_schedule = "constant" if teacher is None else "cosine"
    # The zoo's training models are small: one thread is several times faster than two
    # (measured: GRU 47 vs 377 ms/step on the 2-core machine under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(model, data, steps, lr, batch_size, seed, weight_decay, after_step,
                    progress, description, teacher, temperature, alpha, lr_schedule, monitor)
    finally:
        torch.set_num_threads(threads)


def _fit(model, data, steps, lr, batch_size, seed, weight_decay, after_step, progress,
         description, teacher=None, temperature=DISTILL_TEMPERATURE, alpha=DISTILL_ALPHA,
         lr_schedule="constant", monitor=None):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = None
    if teacher is not None:
        teacher.eval()
    if lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    n = len(data.y_train)
    model.train()
    bar = ProgressBar(progress, description, steps)
    perm, pos = torch.randperm(n, generator=g), 0
    step = 0
    for step in range(1, steps + 1):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        x, y = data.x_train[idx], data.y_train[idx]
        if teacher is not None:
            x = transfer_batch(x, g)
        out = model(x)
        loss = F.cross_entropy(out[:len(y)], y)
        if teacher is not None:
            with torch.no_grad():
                soft = F.softmax(teacher(x) / temperature, dim=1)
            kd = F.kl_div(F.log_softmax(out / temperature, dim=1), soft,
                          reduction="batchmean") * temperature ** 2
            loss = alpha * kd + (1 - alpha) * loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        if after_step is not None:
            after_step()
        bar.advance(loss.item())
        if monitor is not None and monitor(step):
            break
    bar.close()
    if hasattr(monitor, "finish"):
        monitor.finish(step)
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x``, computed in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate(model: nn.Module, data: EvalSplit) -> float:
    """Top-1 accuracy on the test split, in [0, 1]."""
    return accuracy(model, data.x_test, data.y_test)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in [0, 1]."""
    return float((predict(model, x).argmax(1) == y).float().mean())


def calibration_batch(data: TrainSplit, n: int = 256, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training examples chosen by ``seed`` (for gradient / Taylor pruning scores)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.y_train), generator=g)[:n]
    return data.x_train[idx], data.y_train[idx]


class ProgressBar:
    """A Rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.p = None
        if enabled:
            from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            from rich.console import Console

            self.p = Progress(TextColumn("{task.description}"), BarColumn(),
                              TextColumn("{task.completed}/{task.total}"),
                              TextColumn("loss {task.fields[loss]:.3f}"),
                              TimeElapsedColumn(), TimeRemainingColumn(),
                              console=Console(stderr=True), transient=True)
            self.p.start()
            self.t = self.p.add_task(description, total=total, loss=float("nan"))

    def advance(self, loss: float) -> None:
        if self.p is not None:
            self.p.update(self.t, advance=1, loss=loss)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
