"""Consumers: subscribe to the ordered stream and fold it (shared machinery for every consumer)."""
