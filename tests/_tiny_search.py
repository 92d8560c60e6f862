"""Method settings that make a registration take a fraction of a second (for command tests)."""

import json

#: Tiny searches so a registration takes a fraction of a second.
TINY = {
    "popsize": (8, 6),
    "generations": (6, 4),
    "refine_popsize": (6, 6),
    "refine_generations": (4, 3),
    "coarse_size": 8,
    "fine_size": 16,
    "adam_steps": (3, 2),
}

#: The same as ``--set key=value`` arguments.
TINY_SET = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
