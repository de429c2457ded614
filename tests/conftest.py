"""Shared test setup: Qt runs offscreen, and no test may reach model hubs."""

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# No test reads or writes the real user's settings, recent projects or checkpoints: one private
# config folder for the whole run (tests that need their own still override these).
_CONFIG = tempfile.mkdtemp(prefix="vps-test-config-")
os.environ["VPS_CONFIG_DIR"] = _CONFIG
os.environ["VPS_ANNOTATOR_SETTINGS"] = os.path.join(_CONFIG, "settings.json")
for _k in [k for k in os.environ if k.startswith("VPS_") and k.endswith("_CHECKPOINT")]:
    del os.environ[_k]
