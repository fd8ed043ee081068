"""The one training engine: ``task.py`` (the TaskRun contract every task implements), ``fit.py`` (the fit loop,
train/resume/evaluate), ``checkpoint.py`` (optimizer state as safetensors + JSON), ``encoder_cache.py`` (the frozen
encoder outputs shared by the text tasks), ``rows.py`` (the prediction-row base class), ``runtime.py`` (process
tuning), ``distributed.py`` (data-parallel training over several processes with torch.distributed). Nothing here
knows about images, tweets or questions."""
