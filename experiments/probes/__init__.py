"""Probes of trained networks that no training run makes: what the gates do at chosen words."""
