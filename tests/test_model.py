"""Every cell and variant the run's validation accepts builds into a model and predicts."""

import numpy as np
import pytest

from experiments.training.config import from_strings, variant_names
from experiments.training.model import build_model
from experiments.training.tasks import make_task

pytestmark = pytest.mark.tf_only


@pytest.mark.parametrize("task", ["adding", "copy"])  # features, tokens (Embedding)
@pytest.mark.parametrize(("cell", "variant"), [(c, v) for c in ("lstm", "gru") for v in variant_names(c)])
def test_every_accepted_variant_builds_and_predicts(cell, variant, task):
    config = from_strings({"task": task, "cell": cell, "variant": variant, "units": "6", "seq_len": "4"})
    data = make_task(config)
    model = build_model(config, data)
    out = model.predict(data.valid[0][:3], verbose=0)
    assert out.shape[0] == 3 and np.isfinite(out).all()
