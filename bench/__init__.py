"""Hand-run benchmarks (not tests); figures are recorded in bench/RESULTS.md."""
