"""One module per consumer's format; each has `write(splits, folder, context) -> rows per split`."""
