"""Spec validation: every mistake is one line naming the key, the value and what is allowed,
and nothing is written."""
import os

import pytest

from prunebench.errors import BadInputError, StoreError
from prunebench.cli.study import study_command
from prunebench.study.jobs import expand
from prunebench.study.spec import load_spec, validate

BASE = {"models": ["digits-lenet300"], "methods": ["magnitude"], "sparsities": [0.5],
        "formats": ["dense", "csr"], "engines": ["torch-dense"]}


def _bad(match, **changes):
    spec = {**BASE, **changes}
    with pytest.raises(BadInputError, match=match) as e:
        validate(spec, source="t.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


def test_unknown_keys_are_rejected():
    msg = _bad(r"unknown key 'batch'; allowed: name, description, models", batch=[1])
    assert msg.startswith("spec t.yaml:")
    _bad(r"unknown key 'methods\[0\].sope'; allowed: name, scope", methods=[{"name": "magnitude",
                                                                           "sope": "global"}])
    _bad(r"unknown key 'measure.min_tim'", measure={"min_tim": 0.1})
    _bad(r"unknown key 'models\[0\].method'", models=[{"name": "digits-lenet300",
                                                      "method": ["magnitude"]}])


def test_unknown_values_list_the_valid_ones():
    _bad(r"models\[0\].name: got 'lenet'; allowed: .*digits-lenet300", models=["lenet"])
    _bad(r"methods\[0\].name: got 'magnitud'; allowed: random, magnitude",
         methods=["magnitud"])
    _bad(r"methods\[0\].scope: got 'globl'; allowed: layer, global",
         methods=[{"name": "magnitude", "scope": "globl"}])
    _bad(r"engines\[0\]: got 'cuda'; allowed: .*torch-dense", engines=["cuda"])
    _bad(r"formats\[1\]: got 'csx'; allowed: .*csr", formats=["dense", "csx"])
    _bad(r"values\[0\]: got 'bf16'; allowed: fp32, fp16, int8", values=["bf16"])
    _bad(r"sparsities\[0\]: got 1.0; expected a number in \[0.0, 1.0\)", sparsities=[1.0])
    _bad(r"batches\[0\]: got 0; expected an integer >= 1", batches=[0])
    _bad(r"threads\[0\]: got 999; expected an integer in \[1, ", threads=[999])
    _bad(r"methods\[0\].m: got 3; allowed: 2, 4, 8, 16", methods=[{"name": "nm", "m": 3}])
    _bad(r"measure.max_time: got 0.1; expected >= measure.min_time \(0.5\)",
         measure={"min_time": 0.5, "max_time": 0.1})
    _bad(r"format_options.bsr: .*block", format_options={"bsr": {"block": [0, 4]}})
    _bad(r"controls.matched\[0\]: got 'mlp-4096'; allowed: digits-lenet300",
         models=["digits-lenet300", "mlp-4096"], controls={"matched": ["mlp-4096"]})
    _bad(r"profile.method: got 'random'; allowed: magnitude", profile={"method": "random"})
    _bad(r"methods\[1\]: got 'magnitude'; each value may appear once",
         methods=["magnitude", "magnitude"])


def test_empty_grid():
    _bad(r"models: got \[\]; the grid is empty", models=[])
    _bad(r"formats: the list is empty, so the grid would be empty", formats=[])
    spec = validate({**BASE, "formats": ["csr"]}, source="t.yaml")  # torch-dense runs none
    from prunebench.study.runner import plan_jobs

    assert any(j.skip is None for j in expand(spec))  # size jobs still run
    only_latency = validate({**BASE, "formats": ["csr"], "models": [
        {"name": "digits-lenet300", "values": ["fp32"]}]}, source="t.yaml")
    assert plan_jobs(only_latency)


def test_defaults_labels_and_overrides():
    spec = validate({"models": ["digits-lenet300", {"name": "mlp-4096", "batches": [1],
                                                     "methods": ["magnitude-global"]}],
                     "methods": ["random", {"name": "magnitude", "scope": "global"},
                                 {"name": "block", "block": [8, 1]}, {"name": "nm", "n": 1}],
                     "sparsities": [0.9, 0, 0.5]}, source="t.yaml")
    lenet, mlp = spec.models
    assert [m.label for m in lenet.methods] == ["random", "magnitude-global", "block8x1",
                                                "nm1:4"]
    assert lenet.sparsities == (0.5, 0.9) and lenet.seeds == (0,)
    assert [m.label for m in mlp.methods] == ["magnitude-global"] and mlp.batches == (1,)
    jobs = expand(spec)
    nm = [j for j in jobs if j.kind == "prune" and j.method_label == "nm1:4"]
    assert [j.sparsity for j in nm] == [0.75]  # the pattern fixes the sparsity
    assert len({j.hash for j in jobs}) == len(jobs)


def test_builtin_specs_are_valid():
    for name in ("smoke", "default", "full"):
        spec = load_spec(name)
        assert spec.name == name and spec.models
    assert load_spec(None).name == "default"


def test_bad_spec_files(tmp_path):
    with pytest.raises(BadInputError, match="neither a file nor a built-in study; built-in: "
                                            "default, smoke, full"):
        load_spec("nosuch")
    p = tmp_path / "s.yaml"
    p.write_text("models: [digits-lenet300\n")
    with pytest.raises(BadInputError, match="not valid YAML at line"):
        load_spec(str(p))
    p.write_text("- a\n- b\n")
    with pytest.raises(BadInputError, match="expected a mapping"):
        load_spec(str(p))


def test_study_command_writes_nothing_on_bad_input(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("models: [digits-lenet300]\nmethods: [magnitude]\nengines: [nope]\n")
    out = tmp_path / "out"
    with pytest.raises(BadInputError, match="engines\\[0\\]: got 'nope'"):
        study_command(str(p), out=str(out))
    assert not out.exists()
    # a database written by another program is refused before anything is written
    import sqlite3

    out.mkdir()
    c = sqlite3.connect(out / "results.sqlite")
    c.execute("CREATE TABLE t (x)")
    c.commit()
    c.close()
    before = (out / "results.sqlite").read_bytes()
    p.write_text("models: [digits-lenet300]\nmethods: [magnitude]\nsparsities: [0.5]\n"
                 "engines: [torch-dense]\n")
    with pytest.raises(StoreError, match="another program"):
        study_command(str(p), out=str(out), progress=False)
    assert (out / "results.sqlite").read_bytes() == before
    assert sorted(os.listdir(out)) == ["results.sqlite"]
    file_out = tmp_path / "file"
    file_out.write_text("x")
    with pytest.raises(BadInputError, match="--out: .* is a file"):
        study_command(str(p), out=str(file_out))


def test_a_spec_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: étude\nmodels: [digits-lenet300]\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"not UTF-8 text \(byte 0xe9 at offset 13\)"):
        load_spec(path)


def test_finetune_settings_are_checked_and_enter_the_prune_job_hash():
    from prunebench.study.jobs import expand
    from prunebench.study.spec import validate

    base = {"models": ["digits-lenet300"], "methods": ["magnitude"], "sparsities": [0.5],
            "engines": ["torch-dense"]}
    with pytest.raises(BadInputError, match=r"finetune\.lr: got 5; expected a number in"):
        validate(dict(base, finetune={"lr": 5}), source="t")
    with pytest.raises(BadInputError, match=r"unknown key 'finetune.momentum'; allowed: lr,"):
        validate(dict(base, finetune={"momentum": 0.9}), source="t")

    def prune_key(**extra):
        jobs = expand(validate(dict(base, **extra), source="t"))
        return [j for j in jobs if j.kind == "prune" and j.method is not None][0].key

    key = prune_key()
    assert key["finetune_steps"] == 300            # the documented default
    assert key["finetune"]["lr"] == 1e-3 and key["finetune"]["batch_size"] == 64  # its recipe
    assert prune_key(finetune={"lr": 0.01})["finetune"]["lr"] == 0.01
    per_model = prune_key(models=[{"name": "digits-lenet300", "finetune": {"batch": 32}}])
    assert per_model["finetune"]["batch_size"] == 32


def test_the_pydantic_models_hold_every_key_their_messages_list():
    """Each section's model has one field per key its "unknown key" message allows, and the
    key lists keep their documented order."""
    from prunebench.study.spec_models import (TOP_KEYS, ControlsSettings, MeasureSettings,
                                              MethodEntry, ModelEntry, ProfileSettings,
                                              SpecModel, VerifySettings)

    for model in (SpecModel, MethodEntry, ModelEntry, MeasureSettings, VerifySettings,
                  ProfileSettings, ControlsSettings):
        assert set(model.model_fields) == set(model.KEYS), model.__name__
    assert SpecModel.KEYS == TOP_KEYS and TOP_KEYS[:3] == ("name", "description", "models")


def test_the_first_mistake_is_reported_in_check_order():
    """Top-level keys are checked in a fixed order (methods before sparsities, whatever the
    file's order); a model's overrides in the order the file gives them."""
    _bad(r"^spec t.yaml: methods\[0\].name: got 'x'", sparsities=["y"], methods=["x"])
    _bad(r"^spec t.yaml: unknown key 'bogus'", sparsities=["y"], bogus=1)
    _bad(r"^spec t.yaml: models\[0\].threads\[0\]: got 'a'",
         models=[{"name": "digits-lenet300", "threads": ["a"], "seeds": ["b"]}])
    _bad(r"^spec t.yaml: models\[0\].seeds\[0\]: got 'b'",
         models=[{"name": "digits-lenet300", "seeds": ["b"], "threads": ["a"]}])
