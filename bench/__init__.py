"""The benchmark: see bench/README.md (one command: python -m bench.run)."""
