"""The OMS: order lifecycle and positions folded from the sequenced stream."""
