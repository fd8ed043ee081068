"""Transfer Lab core: models, data, training, runs and metrics. Never imports gradio."""
__version__ = "0.1.0"
