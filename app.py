"""Transfer Lab: `python app.py` serves the UI on 127.0.0.1:7860 (Hugging Face Spaces runs this file too).

At start, every run whose training process died (a restart of the app or of the Space, a crash) is put back on
the shared queue and continues from its checkpoint (core.store.jobs.resume_interrupted), and the jobs that were
still waiting are queued again under their old ids (JobQueue.restore_queued); ``TRANSFER_LAB_AUTO_RESUME=0`` turns
both off. Once the app serves, the default model of each prediction tab is
loaded in the background (demo/warmup.py), so the first question of a class does not wait for it;
``TRANSFER_LAB_WARMUP=0`` turns that off.
"""
import logging
import os

from core.engine.runtime import tune_cpu_allocator

tune_cpu_allocator()  # before any thread starts: the training worker then shares the main heap (runtime.py)

from demo import build_app  # noqa: E402
from demo.app import launch_kwargs  # noqa: E402

demo = build_app()


def resume_on_start() -> list:
    """Resubmit the interrupted runs of the run store to the app's queue, then the jobs that were still waiting
    when the server stopped, unless TRANSFER_LAB_AUTO_RESUME=0; the jobs submitted."""
    from core.store.jobs import auto_resume_enabled, resume_interrupted
    from demo.state import jobs

    if not auto_resume_enabled():
        return []
    log = logging.getLogger("transfer_lab")
    resumed = resume_interrupted(None, jobs())
    if resumed:
        log.warning("resuming %d interrupted run(s): %s", len(resumed),
                    ", ".join(os.path.basename(j.resume) for j in resumed))
    restored = jobs().restore_queued()
    if restored:
        log.warning("queued again %d job(s) that were waiting: %s", len(restored), ", ".join(j.id for j in restored))
    return resumed + restored


if __name__ == "__main__":
    from demo import warmup

    warmup.enabled()  # a bad TRANSFER_LAB_WARMUP stops the start with its one sentence, before the server runs
    resume_on_start()
    demo.queue().launch(prevent_thread_lock=True,
                        **launch_kwargs(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                                        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860"))))
    warmup.start()  # after the server is up: the first page is never slowed by the models' loading
    demo.block_thread()
