"""Performance benchmarks (speed, cost, scale); not part of the test suite."""
