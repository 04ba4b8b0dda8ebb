"""Console scripts. Each is a few lines: parse, configure, hand over."""
