"""The streaming benchmark runner behind ``sitegen run`` and ``sitegen package``.

Modules: :mod:`.cells` (input files), :mod:`.sse` (the timed streaming
client), :mod:`.engines` (probes, identity, cold starts per engine),
:mod:`.ledger` (the flushed ledger), :mod:`.guards` (refusals),
:mod:`.progress` (what the operator sees), :mod:`.package` and
:mod:`.runmd` (the packaged run folder), :mod:`.runloop` (the run itself).
"""

from sitegen.runner.packaging import package_ledger
from sitegen.runner.runloop import RunOptions, RunOutcome, run

__all__ = ["RunOptions", "RunOutcome", "package_ledger", "run"]
