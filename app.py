"""Transfer Lab: `python app.py` serves the UI on 127.0.0.1:7860 (Hugging Face Spaces runs this file too)."""
import os

from demo import build_app
from demo.app import launch_kwargs

demo = build_app()

if __name__ == "__main__":
    demo.queue().launch(**launch_kwargs(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                                        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860"))))
