"""What a run records in MLflow: names, tags and provenance, offline fallback, the team server."""
