"""The embeddable pre-trade risk gate that refuses against stale state."""
