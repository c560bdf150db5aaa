"""``scalecalc calibrate design`` (being written)."""
