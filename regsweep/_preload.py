"""What every trial of a built-in trainable needs, imported once per process with the garbage collector paused, then
frozen (`regsweep._collector`): by the workers' fork server (its first preload, `regsweep._local_worker`), and by a
Ray worker before its first trial (`regsweep._tune.run_trial`). Python imports a module once, so this runs once.

- The imports. torch's and torch._dynamo's (the first optimiser a process makes imports it) take 0.5-1 s of a
  core longer with the collector on, as it walks the objects they make again and again (BENCHMARKS.md).
- The fork server's exit. The server outlives `regsweep run` by its own exit, and the interpreter's final
  collection walked every object of torch and torch._dynamo: 1.75-1.95 core-seconds after the command had
  returned, taken from whatever the user ran next. Frozen, 0.34-0.60 (module teardown is what is left).
- The workers. They are forked from the server and share these objects with it, copy on write; a collection in a
  worker no longer walks them, nor writes to their pages (what CPython's gc.freeze documentation advises for a
  process that forks without exec).

Nothing frozen here would be freed later anyway: these are modules and what they hold.
"""

from regsweep._collector import import_paused

TRIAL_MODULES = ("torch", "torch._dynamo", "trainables._registry", "trainables.loop", "regsweep._ahead")

import_paused(TRIAL_MODULES)
