"""Data loaders, one module per task."""
