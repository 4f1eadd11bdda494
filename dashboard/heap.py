"""Keep Streamlit's garbage collection after each script run cheap.

Streamlit runs a full `gc.collect(2)` after every script run (`runner.postScriptGC`). In
the console's process that walked every object of the libraries (pandas, pyarrow,
SQLAlchemy, Streamlit itself), about 100 ms a run on this 2-core machine, and it holds the
GIL, so the browser's "run finished" message waited for it: most of a Grants rerun's time
(159 ms against 64 ms without it, `bench/scale_bench.py --browser`).

Once per process, at the end of its first run (after the login form is drawn, while a
person types; or after the first page when a session cookie skipped the login), the
modules the pages use are imported and everything alive then (modules, classes, the
runtime) is moved to the permanent generation
(`gc.freeze()`): later collections walk only what was made since (sessions, caches, frames),
so they stay cheap and still free what the runs leave behind. Frozen objects are still freed
by reference counting; only a cycle made before the freeze would never be collected, and
`gc.collect()` runs first so that none is left then.

Why not `runner.postScriptGC = false`: the per-run collection bounds the memory a busy
console holds between Python's own collections; freezing keeps it and removes its cost.
"""

from __future__ import annotations

import gc
import importlib
import logging
import pkgutil
import threading
import time

logger = logging.getLogger(__name__)

#: Not imported for the pages: the entrypoint itself, and the operator's command line.
_SKIP = {"app", "users", "heap"}
_lock = threading.Lock()
_frozen = False


def page_modules() -> list[str]:
    import dashboard

    return [f"dashboard.{m.name}" for m in pkgutil.iter_modules(dashboard.__path__)
            if m.name not in _SKIP]


def freeze_startup_heap() -> bool:
    """Import the page modules, collect, and freeze the heap: once per process. Returns
    True when this call froze it."""
    global _frozen
    if _frozen:
        return False
    with _lock:
        if _frozen:
            return False
        started = time.perf_counter()
        for name in page_modules():
            importlib.import_module(name)
        gc.collect()
        gc.freeze()
        _frozen = True
    logger.info("startup heap frozen: %d objects in %.0f ms", gc.get_freeze_count(),
                (time.perf_counter() - started) * 1000)
    return True
