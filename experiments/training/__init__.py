"""Training one run: the parameter table, corpora and tasks, the model, the loop, its probes and figures."""
