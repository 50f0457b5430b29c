"""Click commands beyond `run`, one module per family; heavy imports stay inside functions."""
