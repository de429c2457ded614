"""The model engines (SAM, STCN, Clip-PanoFCN) and their checkpoint registry (``models.weights``).

Importing any part of ``models`` declares the built-in model kinds (:mod:`models.kinds`), so a
checkpoint of any kind can be resolved and validated without the caller loading each model.
"""

import models.kinds  # noqa: F401 - registers the built-in kinds with models.weights
