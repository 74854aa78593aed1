"""Synthetic and real-text tasks: seeded generators, nothing shipped."""
