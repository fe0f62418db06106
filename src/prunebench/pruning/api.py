"""``prune()``: score -> select -> apply, on a schedule, with fine-tuning and a report."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from ..registry import Registry
from ..train import DISTILL_LR, FINETUNE_STEPS, TRAIN_BATCH, VALIDATION_FRACTION, Finetune
from .accounting import sparsity_report
from .granularity import NM, Blocks, Granularity, Unstructured
from .masks import apply_masks
from .schedules import NEEDS_DATA, SCHEDULES, Plan
from .scores import SCORES, ScoreContext
from .select import SCOPES
from .structured import ChannelPruner, check_channel_layers
from .targets import (PrunableWeight, canonical_names, prunable_layers, prunable_weights,
                      select_layers, weights_of)
from .validate import (check_block, check_calibration, check_int, check_nm, check_norm,
                       check_rewind_state, check_schedule_options, check_sparsity)


@dataclass(frozen=True)
class MethodSpec:
    """A pruning method: a score (see :mod:`.scores`) and a granularity."""

    score: str
    granularity: str  # "unstructured" | "block" | "nm" | "channel"
    description: str


METHODS: Registry[MethodSpec] = Registry("method")
METHODS.add("random", MethodSpec("random", "unstructured", "uniform random scores (baseline)"))
METHODS.add("magnitude", MethodSpec("magnitude", "unstructured", "smallest |w| removed"))
METHODS.add("gradient", MethodSpec("gradient", "unstructured",
                                   "smallest |w * dL/dw| on a calibration batch removed"))
METHODS.add("taylor", MethodSpec("taylor", "unstructured",
                                 "smallest first-order Taylor (w * dL/dw)^2, averaged over "
                                 "mini-batches, removed"))
METHODS.add("block", MethodSpec("magnitude", "block", "r x c blocks with the smallest norm"))
METHODS.add("nm", MethodSpec("magnitude", "nm", "keep the n largest |w| of every m along fan-in"))
METHODS.add("channel", MethodSpec("magnitude", "channel",
                                  "output channels with the smallest norm, physically removed"))


class MaskPruner:
    """Mask-based pruning of ``weights``: score, select at a granularity and scope, apply."""

    def __init__(self, model: nn.Module, weights: list[PrunableWeight], score: str,
                 granularity: Granularity, scope: str, context: ScoreContext):
        self.model, self.weights, self.scope = model, weights, scope
        self.score_fn, self.granularity, self.context = SCORES.get(score), granularity, context
        # one dict for the whole run: MaskKeeper reads it while schedules update it
        self.masks = {w.name: torch.ones(w.tensor(model).shape, dtype=torch.bool)
                      for w in weights}

    def prune_to(self, sparsity: float) -> None:
        scores = self.score_fn(self.model, self.weights, self.context)
        by_name = {w.name: w for w in self.weights}
        keep = self.granularity.keep_masks(
            {n: by_name[n].as_gates(s) for n, s in scores.items()},
            {n: by_name[n].as_gates(self.masks[n]) for n in scores},
            sparsity, self.scope)
        for name, k in keep.items():
            m = self.masks[name]
            self.masks[name] = by_name[name].from_gates(k, m.shape) & m
        apply_masks(self.model, self.masks)

    def achieved(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        kept = sum(int(m.sum()) for m in self.masks.values())
        return 1.0 - kept / total if total else 0.0


@dataclass
class PruneResult:
    """What :func:`prune` returns.

    Attributes
    ----------
    model : the pruned model (a deep copy; the caller's model is never changed), in eval mode.
        Pruned weights are exactly zero; channel pruning returns smaller layers.
    masks : {parameter name: bool tensor, True = kept} for mask-based methods; empty for
        ``channel``, whose removed weights no longer exist.
    """

    model: nn.Module
    masks: dict[str, torch.Tensor]
    _report: dict = field(repr=False)

    def report(self) -> dict:
        """JSON-able summary: settings, requested and achieved sparsity, accuracies (None
        without a dataset), ``finetune`` (the last fine-tune: ``converged``,
        ``train_accuracy``, ``val_accuracy``, ``steps_run``, ``best_step``, ``recipe``; None
        without one), per-layer ``layers`` rows and ``totals`` (see
        :func:`~.accounting.sparsity_report`)."""
        return copy.deepcopy(self._report)


def _granularity(kind: str, block, n, m, norm) -> Granularity | None:
    if kind == "unstructured":
        return Unstructured()
    if kind == "block":
        rows, cols = check_block(block)
        return Blocks(rows, cols, check_norm(norm))
    if kind == "nm":
        return NM(*check_nm(n, m))
    check_norm(norm)
    return None  # channel: see ChannelPruner


def _check_dataset(finetune: Any) -> Any:
    fields = ("x_train", "y_train", "x_test", "y_test")
    if finetune is not None and not all(hasattr(finetune, f) for f in fields):
        raise BadInputError(f"finetune={type(finetune).__name__} should be a prunebench.zoo."
                            "Dataset (x_train, y_train, x_test, y_test) or None")
    return finetune


def _example_input(example_input, calibration, data):
    if example_input is not None:
        return example_input
    if calibration is not None:
        return calibration[0][:1]
    if data is not None:
        return data.x_train[:1]
    return None


def prune(model: nn.Module, method: str = "magnitude", sparsity: float = 0.9, *,
          scope: str = "layer", schedule: str = "oneshot", finetune: Any = None,
          finetune_steps: int = FINETUNE_STEPS, rounds: int | None = None,
          block: tuple[int, int] = (4, 4),
          n: int = 2, m: int = 4, norm: str = "l1", layers: list[str] | str | None = None,
          seed: int = 0, rewind_state: dict | None = None,
          calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
          example_input: Any = None, progress: bool = False,
          distill: bool = False, finetune_lr: float | None = None,
          finetune_batch: int | None = None, finetune_epochs: float | None = None,
          finetune_schedule: str | None = None, early_stop: bool = True,
          validation: float = VALIDATION_FRACTION) -> PruneResult:
    """Prune a copy of ``model`` and report what it cost.

    Parameters
    ----------
    model : the dense network; it is deep-copied and never changed.
    method : ``random``, ``magnitude``, ``gradient``, ``taylor`` (unstructured), ``block``
        (``block`` = (rows, cols) tiles ranked by ``norm``), ``nm`` (keep ``n`` of every ``m``
        weights along the fan-in; the pattern fixes the sparsity at ``1 - n/m`` and
        ``sparsity`` is ignored), ``channel`` (output channels ranked by ``norm``,
        physically removed with torch-pruning; ``sparsity`` is the fraction of channels).
        Selected weights a block or N:M pattern cannot fit (a block larger than the weight,
        a fan-in ``m`` does not divide) stay dense and are listed under ``skipped`` in the
        report; when none fits, BadInputError.
    sparsity : fraction of the selected layers' weights (channels for ``channel``) to remove,
        in [0, 1).
    scope : ``layer`` (the same sparsity in every layer and RNN gate) or ``global`` (one
        threshold across layers).
    schedule : ``oneshot``, ``iterative`` (geometric steps), ``iterative-linear``, ``gradual``
        (Zhu & Gupta cubic ramp during fine-tuning) or ``rewind`` (lottery ticket); see
        :mod:`prunebench.pruning.schedules`.
    finetune : a zoo Dataset to fine-tune on and to measure accuracy with; None prunes only.
    finetune_steps : the most fine-tuning steps after pruning (per round for ``iterative``
        and ``rewind``, in total for ``gradual``); early stopping may use fewer.
    finetune_lr, finetune_batch : Adam's learning rate and the batch size; None takes them
        from the model's own training recipe when it is a zoo model
        (:func:`prunebench.zoo.finetune_defaults`: the MNIST-1D models 1e-2 and 100), else
        1e-3 and 128 (with ``distill``: 3e-3 and 128).
    finetune_epochs : when given, the step budget is that many passes over the fine-tuning
        examples instead of ``finetune_steps``.
    finetune_schedule : ``constant`` or ``cosine`` (to zero over the budget); None is
        ``constant``, ``cosine`` with ``distill``.
    early_stop : stop once the validation accuracy has not improved for
        ``train.PATIENCE`` evaluations and keep the best weights.
    validation : fraction of the training split held out to judge convergence (never the test
        split); 0 trains on all of it and nothing is judged. The report's ``finetune`` says
        whether the fine-tune ``converged`` (reached its validation plateau), with train and
        validation accuracy.
    rounds : pruning rounds of ``iterative``, ``iterative-linear`` and ``rewind`` (default 3);
        BadInputError with any other schedule.
    layers : module names to prune, or ``"all"``. None means every nn.Linear, nn.Conv1d/2d/3d,
        nn.RNN/GRU/LSTM and nn.MultiheadAttention except the first and the last one in
        definition order (all of them when that leaves none; ``channel`` never shrinks the last
        layer). Biases and normalisation parameters are never pruned. A Parameter tied between
        modules is pruned once, with one mask.
    seed : seeds random scores, the calibration batch and fine-tuning.
    rewind_state : state_dict to rewind to (required by ``rewind``, refused by the others), e.g.
        the init state from ``prunebench.zoo.load(name, return_init=True)``.
    calibration : ``(x, y)`` batch for ``gradient``/``taylor`` scores; default
        ``train.calibration_batch(finetune, seed=seed)``.
    example_input : model input for MAC counting and channel tracing; default the first
        calibration or training example. Without one, MAC figures are None.
    progress : show fine-tuning progress bars on stderr.
    distill : fine-tune on the dense model's softened outputs as well as the labels
        (knowledge distillation, temperature 4, 90% distillation loss, Adam lr 3e-3 with cosine
        decay, matched on each batch, a mixup of it and a noisy copy;
        :func:`prunebench.train.fit`). On small datasets it recovers far more: on mnist1d-mlp
        at 90% with 3000 steps it leaves 0.7 points to dense where labels alone leave 6.5.
    Examples
    --------
    >>> model, data = prunebench.zoo.load("mnist1d-mlp")             # doctest: +SKIP
    >>> r = prune(model, "magnitude", 0.9, scope="global", finetune=data)  # doctest: +SKIP
    >>> r.report()["accuracy_pruned"]                                # doctest: +SKIP
    """
    spec = METHODS.get(method)
    SCOPES.get(scope)
    run = SCHEDULES.get(schedule)
    sparsity = check_sparsity(sparsity)
    finetune_steps = check_int("finetune_steps", finetune_steps, 0)
    recipe = Finetune(steps=finetune_steps, lr=finetune_lr, batch_size=finetune_batch,
                      epochs=finetune_epochs, lr_schedule=finetune_schedule,
                      early_stop=early_stop, validation=validation).checked()
    rounds = check_schedule_options(schedule, rounds, rewind_state)
    seed = check_int("seed", seed, 0)
    data = _check_dataset(finetune)
    if not isinstance(distill, bool):
        raise BadInputError(f"distill={distill!r} should be True or False")
    calibration = check_calibration(calibration)
    granularity = _granularity(spec.granularity, block, n, m, norm)
    if isinstance(granularity, NM):
        sparsity = granularity.sparsity
    if data is not None:
        from ..zoo import finetune_defaults

        lr0, batch0 = (DISTILL_LR, TRAIN_BATCH) if distill else finetune_defaults(model)
        n_fit = len(data.y_train) - int(round(recipe.validation * len(data.y_train)))
        recipe = recipe.resolved(lr0, batch0, n_fit, distill)
        finetune_steps = recipe.steps
    if schedule in NEEDS_DATA and (data is None or finetune_steps == 0):
        raise BadInputError(f"schedule={schedule!r} trains while pruning; it needs "
                            "finetune=<Dataset> and finetune_steps >= 1")

    working = copy.deepcopy(model)
    if schedule == "rewind":
        rewind_state = check_rewind_state(rewind_state, working.state_dict())
    if spec.score in ("gradient", "taylor") and calibration is None and data is not None:
        from ..train import calibration_batch

        calibration = calibration_batch(data, seed=seed)
    example = _example_input(example_input, calibration, data)
    layer_names = select_layers(working, layers)

    skipped: dict[str, str] = {}
    if granularity is None:   # channel removal: no mask granularity
        if schedule in ("gradual", "rewind"):
            raise BadInputError(f"schedule={schedule!r} cannot follow channel removal (it "
                                "changes parameter shapes mid-run); allowed with "
                                "method='channel': oneshot, iterative, iterative-linear")
        if example is None:
            raise BadInputError("method='channel' traces the model and needs example_input=, "
                                "calibration= or finetune=")
        pruned_modules = check_channel_layers(working, layer_names,
                                              explicit=isinstance(layers, (list, tuple)))
    else:
        shapes = {w.name: tuple(w.as_gates(w.tensor(working)).shape)
                  for w in prunable_weights(working, layer_names)}
        skipped = granularity.unusable(shapes)
        if len(skipped) == len(shapes):
            name, why = next(iter(skipped.items()))
            raise BadInputError(
                f"method={method!r} fits none of the selected weights ({name}: {why}); "
                f"allowed: {_pattern_rule(spec.granularity)}, or other layers= "
                f"(prunable: {', '.join(prunable_layers(working))})")
        pruned_modules = [n for n in layer_names
                          if any(w.name not in skipped for w in weights_of(working, n))]

    def make_pruner(net: nn.Module) -> MaskPruner | ChannelPruner:
        if granularity is None:
            return ChannelPruner(net, pruned_modules, example, check_norm(norm), scope)
        weights = [w for w in prunable_weights(net, layer_names) if w.name not in skipped]
        return MaskPruner(net, weights, spec.score, granularity, scope,
                          ScoreContext(calibration, torch.Generator().manual_seed(seed)))

    evaluate_fn = _evaluator(data)
    accuracy_dense = evaluate_fn(working) if evaluate_fn else None
    pruner = make_pruner(working)
    if isinstance(pruner, ChannelPruner):
        skipped = dict(pruner.skipped)
        if len(skipped) == len(pruned_modules):
            name, why = next(iter(skipped.items()))
            raise BadInputError(f"method='channel' can shrink none of the selected layers "
                                f"({name}: {why}); pass other layers=")
        pruned_modules = [n for n in pruned_modules if n not in skipped]
    teacher = None
    if distill and data is not None and finetune_steps > 0:
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    plan = Plan(model=working, data=data, steps=finetune_steps, rounds=rounds, seed=seed,
                progress=progress, rewind_state=rewind_state, evaluate=evaluate_fn,
                teacher=teacher, recipe=recipe if data is not None else None)
    history = run(pruner, sparsity, plan)

    accuracy_before = None
    if evaluate_fn is not None:
        if schedule == "oneshot":
            accuracy_before = history[0]["accuracy"]
        else:  # the damage one-shot pruning does before any recovery
            probe = copy.deepcopy(model)
            make_pruner(probe).prune_to(sparsity)
            accuracy_before = evaluate_fn(probe)
    accuracy_pruned = evaluate_fn(working) if evaluate_fn else None

    working.eval()
    masks = dict(pruner.masks) if spec.granularity != "channel" else {}
    accounting = sparsity_report(working, example, reference=model)
    pruned_set = set(pruned_modules)
    canonical = canonical_names(working)   # a tied weight's rows all name its one mask
    for row in accounting["layers"]:
        row["pruned"] = (canonical.get(row["name"], row["name"]) in masks if masks
                         else row["module"] in pruned_set)
    report = {
        "method": method, "score": spec.score, "granularity": spec.granularity,
        "scope": scope, "schedule": schedule,
        "sparsity_requested": sparsity, "sparsity_achieved": pruner.achieved(),
        "sparsity_unit": "channels" if spec.granularity == "channel" else "weights",
        "pruned_layers": list(pruned_modules),
        "skipped": [{"name": k, "reason": v} for k, v in skipped.items()],
        "block": list(check_block(block)) if spec.granularity == "block" else None,
        "n": n if spec.granularity == "nm" else None,
        "m": m if spec.granularity == "nm" else None,
        "norm": norm if spec.granularity in ("block", "channel") else None,
        "rounds": rounds if schedule in ("iterative", "iterative-linear", "rewind") else None,
        "finetune_steps": finetune_steps if data is not None else 0,
        "distill": teacher is not None,
        "finetune": plan.last_finetune,
        "seed": seed,
        "accuracy_dense": accuracy_dense,
        "accuracy_pruned_before_finetune": accuracy_before,
        "accuracy_pruned": accuracy_pruned,
        "history": history,
        "layers": accounting["layers"],
        "totals": accounting["totals"],
    }
    return PruneResult(model=working, masks=masks, _report=report)


def _pattern_rule(granularity: str) -> str:
    if granularity == "block":
        return "blocks no larger than a weight's (rows x fan-in) matrices"
    return "m dividing a weight's fan-in (in/groups * kernel size for Conv)"


def _evaluator(data):
    """``net -> test accuracy`` on ``data``, or None without a dataset."""
    if data is None:
        return None
    from ..train import evaluate

    return lambda net: evaluate(net, data)
