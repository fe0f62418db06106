"""Fine-tuning defaults shared by ``prune()``, every CLI command and study specs (no torch
import, so the CLI can show them in its help cheaply); :mod:`prunebench.train` uses them."""

#: the most fine-tuning steps after pruning (per round for ``iterative``/``rewind``, in total
#: for ``gradual``); early stopping may use fewer
FINETUNE_STEPS = 300
#: the fraction of the training split held out to decide when fine-tuning has converged (the
#: test split is never looked at); the same examples for every run on a dataset
VALIDATION_FRACTION = 0.1
#: converged = the best validation accuracy was reached at least PATIENCE evaluations before
#: the end (early stopping stops there and restores the best weights)
PATIENCE = 4
LR_SCHEDULES = ("constant", "cosine")
