"""Headroom's Python training runtime: `python -m headroom_runtime.train` (the recipe),
`python -m headroom_runtime.assets ensure` (the embedded tiny models), and
`python -m headroom_runtime.trace` (one fake-tensor training step's peak bytes)."""
