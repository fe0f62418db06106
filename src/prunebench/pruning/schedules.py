"""Schedules: when to prune and how much, interleaved with fine-tuning.

A schedule drives a *pruner* (anything with ``prune_to(sparsity)``, ``masks`` and
``achieved()``) and fine-tunes through :func:`prunebench.train.fit`, keeping masked weights at
zero with :class:`~.masks.MaskKeeper`. Each returns its history: one dict per pruning event.

- ``oneshot``: prune to the target, then fine-tune ``finetune_steps`` steps.
- ``iterative``: ``rounds`` rounds of prune + fine-tune ``finetune_steps`` steps, the target
  reached in geometric steps ``1 - (1 - s)^(r/rounds)`` (each round removes the same fraction
  of what is left); ``iterative-linear`` uses ``s * r / rounds``.
- ``gradual``: Zhu & Gupta (2017) cubic ramp inside one fine-tuning run of ``finetune_steps``
  steps: ``s_t = s_f (1 - (1 - t/T)^3)`` for ``t`` in ``GRADUAL_EVENTS`` evenly spaced steps up
  to ``T = GRADUAL_RAMP * finetune_steps``; the remaining steps train at the final sparsity.
- ``rewind``: lottery-ticket rewinding (Frankle & Carbin 2019; Frankle et al. 2020): each of
  ``rounds`` rounds prunes the trained weights (geometric targets), resets the survivors to
  ``rewind_state`` (the caller's state_dict at initialisation or at an early step k) and
  retrains ``finetune_steps`` steps; each round's entry is recorded after its retraining.

Fine-tuning follows the plan's recipe (:class:`prunebench.train.Finetune`): early stopping on
a validation split carved from the training data, judged in ``gradual`` only after its ramp.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch
from torch import nn

from ..errors import BadInputError
from ..registry import Registry
from .masks import MaskKeeper, apply_masks

if TYPE_CHECKING:
    from ..train import Finetune

GRADUAL_EVENTS = 16
GRADUAL_RAMP = 0.75


class Pruner(Protocol):
    masks: dict[str, torch.Tensor]

    def prune_to(self, sparsity: float) -> None: ...

    def achieved(self) -> float: ...


@dataclass
class Plan:
    """Everything a schedule needs besides the pruner and the target."""

    model: nn.Module
    data: Any = None                      # a zoo Dataset, or None: prune without fine-tuning
    steps: int = 200                      # fine-tuning steps (per round where rounds apply)
    rounds: int = 3
    seed: int = 0
    progress: bool = False
    rewind_state: dict | None = None
    evaluate: Callable[[nn.Module], float] | None = None
    teacher: nn.Module | None = None      # distil from it while fine-tuning (None: labels only)
    # the resolved fine-tuning recipe (train.Finetune); None: Adam 1e-3, batch 128, no
    # validation split
    recipe: Any = None
    history: list[dict] = field(default_factory=list)
    #: what the last fine-tune reported (train.finetune's dict), or None
    last_finetune: dict | None = None

    def record(self, pruner: Pruner, target: float, **extra: Any) -> dict[str, Any]:
        entry = {"sparsity_target": target, "sparsity_achieved": pruner.achieved(), **extra}
        if self.evaluate is not None:
            entry["accuracy"] = self.evaluate(self.model)
        self.history.append(entry)
        return entry

    def the_recipe(self) -> Finetune:
        from ..train import TRAIN_BATCH, TRAIN_LR, Finetune

        if self.recipe is not None:
            return replace(self.recipe, steps=self.steps)
        return Finetune(steps=self.steps, lr=TRAIN_LR, batch_size=TRAIN_BATCH, validation=0.0,
                        lr_schedule="cosine" if self.teacher is not None else "constant")

    def finetune(self, pruner: Pruner, round_index: int = 0,
                 after_step: Callable[[], None] | None = None,
                 watch_from: int = 0, description: str | None = None) -> dict | None:
        """Fine-tune with the masks kept; returns (and keeps in ``last_finetune``) what
        :func:`prunebench.train.finetune` reports, or None without data or steps."""
        if self.data is None or self.steps == 0:
            return None
        from ..train import finetune

        with MaskKeeper(self.model, pruner.masks) as keeper:
            def keep() -> None:
                if after_step is not None:
                    after_step()
                keeper.after_step()

            self.last_finetune = finetune(
                self.model, self.data, self.the_recipe(), seed=self.seed + round_index,
                after_step=keep, watch_from=watch_from, progress=self.progress,
                description=description or f"fine-tune {round_index + 1}",
                teacher=self.teacher)
        return self.last_finetune

    def finetune_and_note(self, pruner: Pruner, entry: dict, round_index: int = 0) -> None:
        """Fine-tune, then add to ``entry`` the fine-tune's report and the test accuracy
        after it (``accuracy_after_finetune``)."""
        stats = self.finetune(pruner, round_index)
        if stats is not None:
            entry["finetune"] = stats
            if self.evaluate is not None:
                entry["accuracy_after_finetune"] = self.evaluate(self.model)


Schedule = Callable[[Pruner, float, Plan], list[dict]]
SCHEDULES: Registry[Schedule] = Registry("schedule")
NEEDS_DATA = {"gradual", "rewind"}


def geometric_targets(sparsity: float, rounds: int) -> list[float]:
    """Targets that remove the same fraction of the remaining weights each round."""
    return [1.0 - (1.0 - sparsity) ** (r / rounds) for r in range(1, rounds + 1)]


def linear_targets(sparsity: float, rounds: int) -> list[float]:
    return [sparsity * r / rounds for r in range(1, rounds + 1)]


def cubic_targets(sparsity: float, steps: int) -> dict[int, float]:
    """{training step (1-based): sparsity} of the gradual schedule's pruning events."""
    ramp = max(1, round(GRADUAL_RAMP * steps))
    events = {}
    for j in range(1, GRADUAL_EVENTS + 1):
        t = max(1, round(j * ramp / GRADUAL_EVENTS))
        events[t] = sparsity * (1.0 - (1.0 - t / ramp) ** 3)
    return events


@SCHEDULES.register("oneshot")
def oneshot(pruner: Pruner, sparsity: float, plan: Plan) -> list[dict]:
    pruner.prune_to(sparsity)
    entry = plan.record(pruner, sparsity, event="prune")
    plan.finetune_and_note(pruner, entry)
    return plan.history


def _iterative(targets: list[float], pruner: Pruner, plan: Plan) -> list[dict]:
    for r, target in enumerate(targets):
        pruner.prune_to(target)
        entry = plan.record(pruner, target, event="prune", round=r + 1)
        plan.finetune_and_note(pruner, entry, r)
    return plan.history


@SCHEDULES.register("iterative")
def iterative(pruner: Pruner, sparsity: float, plan: Plan) -> list[dict]:
    return _iterative(geometric_targets(sparsity, plan.rounds), pruner, plan)


@SCHEDULES.register("iterative-linear")
def iterative_linear(pruner: Pruner, sparsity: float, plan: Plan) -> list[dict]:
    return _iterative(linear_targets(sparsity, plan.rounds), pruner, plan)


@SCHEDULES.register("gradual")
def gradual(pruner: Pruner, sparsity: float, plan: Plan) -> list[dict]:
    events = cubic_targets(sparsity, plan.steps)
    step = 0

    def after_step() -> None:
        nonlocal step
        step += 1
        if step in events:
            pruner.prune_to(events[step])  # writes the new zeros itself
            plan.history.append({"event": "prune", "step": step,
                                 "sparsity_target": events[step],
                                 "sparsity_achieved": pruner.achieved()})

    # convergence is judged (and early stopping may stop) only once the ramp is over
    stats = plan.finetune(pruner, after_step=after_step, watch_from=max(events),
                          description="gradual prune")
    if plan.history:
        if stats is not None:
            plan.history[-1]["finetune"] = stats
        if plan.evaluate is not None:
            plan.history[-1]["accuracy_end"] = plan.evaluate(plan.model)
    return plan.history


@SCHEDULES.register("rewind")
def rewind(pruner: Pruner, sparsity: float, plan: Plan) -> list[dict]:
    """Each round's entry holds the ticket's test accuracy after its retraining
    (``accuracy``) and right after rewinding, before it (``accuracy_rewound``)."""
    for r, target in enumerate(geometric_targets(sparsity, plan.rounds)):
        pruner.prune_to(target)
        if plan.rewind_state is None:
            raise BadInputError("schedule='rewind' needs rewind_state= (the state dict to "
                                "rewind to)")
        plan.model.load_state_dict(plan.rewind_state)
        apply_masks(plan.model, pruner.masks)
        rewound = plan.evaluate(plan.model) if plan.evaluate is not None else None
        stats = plan.finetune(pruner, r)
        entry = plan.record(pruner, target, event="prune+rewind", round=r + 1)
        if plan.evaluate is not None:
            entry["accuracy_rewound"] = rewound
            entry["accuracy_after_finetune"] = entry["accuracy"]
        if stats is not None:
            entry["finetune"] = stats
    return plan.history
