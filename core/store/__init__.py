"""The run store and what reads it: ``runs.py`` (one folder per run), ``jobs.py`` (the training queue),
``predictors.py`` (loaded models for inference), ``compare.py`` (two runs side by side), ``report.py`` (tables of
runs)."""
