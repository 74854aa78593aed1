"""Parts of `experiments.benchmark`: PyTorch contenders, peak memory of a step, the tables."""
