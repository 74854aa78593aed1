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


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_recurrent_initializer_reaches_the_recurrent_weights(cell):
    def recurrent_kernel(init: str) -> np.ndarray:
        config = from_strings(
            {"task": "adding", "cell": cell, "units": "6", "seq_len": "4", "recurrent_initializer": init}
        )
        layer = build_model(config, make_task(config)).get_layer("recurrent")
        return next(w.numpy() for w in layer.weights if w.path.endswith("recurrent_kernel"))

    identity = recurrent_kernel("identity")
    np.testing.assert_array_equal(identity, np.eye(*identity.shape))
    orthogonal = recurrent_kernel("auto")  # the layer's own: orthonormal rows (units × slots·units)
    assert not np.array_equal(orthogonal, identity)
    np.testing.assert_allclose(orthogonal @ orthogonal.T, np.eye(6), atol=1e-5)
