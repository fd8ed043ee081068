"""The Gradio UI: one module per tab, thin handlers that call core/."""
from demo.app import build_app

__all__ = ["build_app"]
