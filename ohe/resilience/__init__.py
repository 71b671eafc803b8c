"""Error classes, retry policy and the circuit-breaker registry."""
