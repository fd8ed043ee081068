import sys

from core.engine.runtime import tune_cpu_allocator

tune_cpu_allocator()  # before any thread starts (the starter's queue trains in one): core/engine/runtime.py

from core.cli import main  # noqa: E402

sys.exit(main())
