"""Resources: what the GPUs have, how big a batch fits, what an out-of-memory error looks
like (seed rules §8–§10: R-RES, R-SCHED). Imported where used; NVML (``nvidia-ml-py``)
only when an inventory is read from the machine.

    inventory.py   GpuInfo, the machine's GPUs through NVML, or an injected inventory
    planner.py     the batch that fits a device's free memory, from a model's checklist
    oom.py         is this exception an out-of-memory error? (one table of patterns)
"""

from __future__ import annotations
