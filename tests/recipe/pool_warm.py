"""A module a prestarted worker of tests/recipe/test_pool.py imports while it waits: it says
so on stdout and in <$POOL_WARM_FOLDER>/<pid>.imported."""

import os
import pathlib

print("pool_warm imported", flush=True)
pathlib.Path(os.environ["POOL_WARM_FOLDER"], f"{os.getpid()}.imported").write_text("")
