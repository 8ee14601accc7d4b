"""Delivery: per-actor queues, rate limits, retries, circuit breakers, dead letters and workers."""
