"""Imported last by the workers' fork server, once everything it preloads is in memory
(`regsweep._local_worker.PRELOAD`): moves every object made so far to the garbage collector's permanent
generation (`gc.freeze()`), which later collections skip.

- The server's exit. The server outlives `regsweep run` by its own exit, and the interpreter's final collection
  walked every object of torch and torch._dynamo: 1.75-1.95 core-seconds after the command had returned, taken
  from whatever the user ran next. Now 0.34-0.60 (module teardown is what is left; BENCHMARKS.md). The CLI
  freezes its own objects at exit for the same reason.
- The workers. They are forked from the server and share these objects with it, copy on write; a collection in a
  worker no longer walks them, nor writes to their pages (what CPython's gc.freeze documentation advises for a
  process that forks without exec).

Nothing frozen here would be freed later anyway: these are modules and what they hold.
"""

import gc

gc.freeze()
