"""Reports: a study's runs loaded back, statistics, the claims and their verdicts, plots, markdown, HTML.

`pipeline` runs the steps, one module each: `load` (runs from MLflow) → `analyse` (best-over-LR,
summaries, comparisons; numbers from `stats`) → `write` and `plots` (report.md, PNGs) →
`claim_evaluation` of the `claim_catalogue` and `claims_page` (claims.json, claims.md) →
`html_page` (report.html). `metrics` names the columns, `descriptors` describes a configuration.
"""
