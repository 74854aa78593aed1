"""Sweeps: specs (YAML: experiments/sweeps/), trials on Ray as nested runs, leases, resume, threads."""
