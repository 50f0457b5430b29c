"""Side-by-side benchmarks of executor against its peers (`python -m bench`).

One module per scenario family; each returns `results.Row`s. `__main__` runs them, writes
`BENCHMARKS.md`, `results.json` and the plot. See BENCHMARKS.md for how to reproduce.
"""
