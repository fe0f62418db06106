"""Fine-tuning that converges (issue 16, item 1): the model's own recipe, a validation split
carved from the training data, early stopping on its plateau, and what the report says."""
from __future__ import annotations

import pytest
import torch

from prunebench import train, zoo
from prunebench.errors import BadInputError
from prunebench.pruning import prune
from prunebench.train import Finetune, evaluate, split_validation
from prunebench.zoo import Dataset


def test_validation_split_is_carved_from_training_data_only(data):
    fit_data, x_val, y_val = split_validation(data, 0.1)
    n = len(data.y_train)
    assert len(y_val) == round(0.1 * n) and len(fit_data.y_train) == n - len(y_val)
    # disjoint, together exactly the training split (rows matched by their values)
    rows = {tuple(r.tolist()) for r in data.x_train}
    val = {tuple(r.tolist()) for r in x_val}
    kept = {tuple(r.tolist()) for r in fit_data.x_train}
    assert val | kept == rows and not (val & kept)
    assert not val & {tuple(r.tolist()) for r in data.x_test}
    again = split_validation(data, 0.1)[1]
    assert torch.equal(again, x_val)           # the same examples every time
    assert split_validation(data, 0.0)[1] is None


def test_recipe_defaults_come_from_the_zoo_models_training():
    assert zoo.finetune_defaults("mnist1d-cnn") == (1e-2, 100)
    assert zoo.finetune_defaults(zoo.build("digits-lenet5")) == (2e-3, 64)
    assert zoo.finetune_defaults(torch.nn.Linear(3, 2)) == (1e-3, 128)
    assert zoo.finetune_defaults("mobilenetv2") == (1e-3, 128)   # not trained here


def test_epochs_set_the_step_budget():
    r = Finetune(epochs=2).resolved(1e-2, 100, n_train=3600, distill=False)
    assert (r.steps, r.lr, r.batch_size, r.lr_schedule) == (72, 1e-2, 100, "constant")
    assert Finetune().resolved(3e-3, 128, 100, distill=True).lr_schedule == "cosine"


@pytest.mark.parametrize("kwargs, needle", [
    ({"finetune_lr": 0}, "finetune_lr: got 0"),
    ({"finetune_lr": 2.0}, "finetune_lr: got 2.0"),
    ({"finetune_batch": 0}, "finetune_batch: got 0"),
    ({"finetune_epochs": 0}, "finetune_epochs: got 0"),
    ({"finetune_schedule": "step"}, "finetune_schedule: got 'step'"),
    ({"early_stop": "yes"}, "early_stop: got 'yes'"),
    ({"validation": 0.6}, "validation: got 0.6"),
])
def test_bad_recipe_is_one_clear_error(mlp, data, kwargs, needle):
    with pytest.raises(BadInputError, match=needle.replace("(", r"\(")):
        prune(mlp, "magnitude", 0.5, finetune=data, **kwargs)


class Scripted:
    """Validation accuracies in a given order (patched over train.accuracy for the val set)."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, model, x, y):
        if len(x) != self.n_val:
            return 0.5  # the train-accuracy figure at the end
        self.calls += 1
        return self.values[min(self.calls, len(self.values)) - 1]


def _finetune_with(monkeypatch, data, values, steps, early_stop=True):
    from .pruning_helpers import MLP

    s = Scripted(values)
    s.n_val = round(0.1 * len(data.y_train))
    monkeypatch.setattr(train, "accuracy", s)
    torch.manual_seed(0)
    model = MLP()
    snapshots = {}

    class Spy(train._Plateau):  # records the weights at every evaluation
        def __call__(self, step):
            stop = super().__call__(step)
            if step % self.every == 0:
                snapshots[step] = model.fc2.weight.detach().clone()
            return stop

    monkeypatch.setattr(train, "_Plateau", Spy)
    recipe = Finetune(steps=steps, lr=1e-2, batch_size=32, early_stop=early_stop)
    return model, train.finetune(model, data, recipe.resolved(1e-2, 32, 460, False)), snapshots


def test_early_stopping_stops_on_the_plateau_and_keeps_the_best(monkeypatch, data):
    # evaluations every max(5, 400 // 20) = 20 steps; the best is the 3rd (step 60), then
    # PATIENCE = 4 evaluations without a higher accuracy: stop at step 60 + 4 * 20 = 140
    model, out, snaps = _finetune_with(monkeypatch, data,
                                       [0.3, 0.5, 0.7, 0.7, 0.6, 0.69, 0.65, 0.9], 400)
    assert train.PATIENCE == 4
    assert (out["steps_run"], out["best_step"], out["converged"]) == (140, 60, True)
    assert out["val_accuracy"] == 0.7
    assert torch.equal(model.fc2.weight, snaps[60])      # the best weights restored
    assert out["recipe"]["lr"] == 1e-2 and out["recipe"]["batch_size"] == 32


def test_still_improving_at_the_end_is_not_converged(monkeypatch, data):
    values = [0.1 + 0.01 * i for i in range(40)]
    model, out, snaps = _finetune_with(monkeypatch, data, values, 200)
    assert (out["steps_run"], out["best_step"], out["converged"]) == (200, 200, False)
    # without early stopping the whole budget runs and the plateau is still judged
    _, out2, _ = _finetune_with(monkeypatch, data, [0.5, 0.8] + [0.7] * 20, 200,
                                early_stop=False)
    # evaluations every max(5, 200 // 20) = 10 steps: the best is the 2nd
    assert (out2["steps_run"], out2["best_step"], out2["converged"]) == (200, 20, True)


def test_zoo_model_is_fine_tuned_with_its_recipe_and_the_report_says_how_it_went():
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(40, 10, generator=g)
    x, xt = torch.randn(600, 40, generator=g), torch.randn(200, 40, generator=g)
    data = Dataset("synthetic", x, (x @ teacher).argmax(1), xt, (xt @ teacher).argmax(1), 10)
    model = zoo.build("mnist1d-mlp")
    train.fit(model, data, steps=200, lr=1e-2, batch_size=100)
    rep = prune(model, "magnitude", 0.5, finetune=data, finetune_steps=100).report()
    ft = rep["finetune"]
    assert ft["recipe"] == {"steps": 100, "lr": 1e-2, "batch_size": 100, "epochs": None,
                            "lr_schedule": "constant", "early_stop": True, "validation": 0.1}
    assert ft["converged"] in (True, False) and 5 <= ft["best_step"] <= ft["steps_run"] <= 100
    fit_data, xv, yv = split_validation(data, 0.1)
    # train and validation accuracy are those of the returned model on those examples
    pruned = prune(model, "magnitude", 0.5, finetune=data, finetune_steps=100)
    again = pruned.report()["finetune"]
    assert again["val_accuracy"] == pytest.approx(train.accuracy(pruned.model, xv, yv))
    assert again["train_accuracy"] == pytest.approx(
        train.accuracy(pruned.model, fit_data.x_train, fit_data.y_train))
    assert rep["accuracy_pruned"] == pytest.approx(evaluate(pruned.model, data))
    # explicit settings win over the recipe
    rep2 = prune(model, "magnitude", 0.5, finetune=data, finetune_steps=10, finetune_lr=3e-4,
                 finetune_batch=16, validation=0.0).report()
    assert rep2["finetune"]["recipe"]["lr"] == 3e-4
    assert rep2["finetune"]["recipe"]["batch_size"] == 16
    assert rep2["finetune"]["converged"] is None and rep2["finetune"]["steps_run"] == 10


def test_rewind_history_records_each_round_after_its_retraining(data):
    import copy

    from .pruning_helpers import MLP

    torch.manual_seed(0)
    init = MLP()
    init_state = copy.deepcopy(init.state_dict())
    trained = train.fit(copy.deepcopy(init), data, steps=200, lr=3e-3)
    result = prune(trained, "magnitude", 0.8, schedule="rewind", rounds=2, finetune=data,
                   finetune_steps=60, rewind_state=init_state)
    history = result.report()["history"]
    assert [h["round"] for h in history] == [1, 2]
    # the last round's entry is the returned ticket, measured after its retraining
    assert history[-1]["accuracy"] == pytest.approx(evaluate(result.model, data))
    assert history[-1]["accuracy"] == result.report()["accuracy_pruned"]
    for h in history:
        assert h["accuracy_after_finetune"] == h["accuracy"]
        assert h["finetune"]["steps_run"] >= 1
        # rewound to init, the ticket is far worse than after retraining
        assert h["accuracy_rewound"] < h["accuracy"]


def test_chance_threshold_is_the_majority_share_plus_a_margin():
    balanced = torch.arange(400) % 10                     # 10 classes, 40 each: chance 0.1
    # 3 binomial sigmas: 3 * sqrt(0.1 * 0.9 / 400) = 0.045 < the 0.05 floor
    assert train.chance_threshold(balanced) == pytest.approx(0.15)
    skewed = torch.tensor([0] * 30 + [1] * 70)            # always "1" scores 0.7
    assert train.chance_threshold(skewed) == pytest.approx(0.7 + 3 * (0.7 * 0.3 / 100) ** 0.5)


def test_a_plateau_at_chance_is_not_converged():
    """Labels drawn independently of the inputs: nothing generalises, validation accuracy
    plateaus near 1/10 and the fine-tune must say so instead of calling it converged."""
    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(1000, 40, generator=g), torch.randn(200, 40, generator=g)
    y, yt = torch.arange(1000) % 10, torch.arange(200) % 10
    y = y[torch.randperm(1000, generator=g)]
    noise = Dataset("noise", x, y, xt, yt, 10)
    torch.manual_seed(0)
    model = zoo.build("mnist1d-mlp")
    rep = prune(model, "magnitude", 0.9, finetune=noise, finetune_steps=200,
                finetune_lr=1e-3).report()["finetune"]
    _, _, y_val = split_validation(noise, 0.1)
    assert rep["val_accuracy"] <= train.chance_threshold(y_val)
    assert rep["at_chance"] is True and rep["converged"] is False
    assert rep["best_step"] < rep["steps_run"]            # it did stop on a plateau


def test_scripted_plateau_at_chance(monkeypatch, data):
    """The same plateau converges just above the chance threshold and not at it."""
    _, _, y_val = split_validation(data, 0.1)
    limit = train.chance_threshold(y_val)
    # the plateau of test_early_stopping_stops_on_the_plateau..., scaled under the threshold
    values = [limit * v / 0.7 for v in (0.3, 0.5, 0.7, 0.7, 0.6, 0.69, 0.65, 0.9)]
    _, out, _ = _finetune_with(monkeypatch, data, values, 400)
    assert (out["steps_run"], out["best_step"]) == (140, 60)
    assert out["val_accuracy"] == pytest.approx(limit)
    assert out["at_chance"] is True and out["converged"] is False
    _, out, _ = _finetune_with(monkeypatch, data, [v + 0.01 for v in values], 400)
    assert out["at_chance"] is False and out["converged"] is True
