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
#: a plateau only counts as converged when the best validation accuracy is clearly above chance
#: (what always answering the validation split's most common class scores): by at least
#: CHANCE_MARGIN and by CHANCE_SIGMAS binomial standard deviations of that chance accuracy on the
#: validation examples; below that the fine-tune is ``at_chance`` and not converged
CHANCE_MARGIN = 0.05
CHANCE_SIGMAS = 3.0
LR_SCHEDULES = ("constant", "cosine")
