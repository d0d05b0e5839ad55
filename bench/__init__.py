"""hashfed's benchmark: ``python -m bench`` (or ``hashfed bench``). See BENCHMARKS.md."""
