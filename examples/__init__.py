"""Demo models and data for Toolbridge (see examples/README.md)."""
