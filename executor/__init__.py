"""executor: a container-sandboxed, distributed runner for DVC pipelines."""

__version__ = "0.1.0"
