"""Reports: a study's runs loaded back, statistics, the claims and their verdicts, plots, markdown, HTML."""
