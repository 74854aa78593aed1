"""Experiments over lstm_keras: tasks, training entry points, benchmarks."""
