"""Shared test setup: Qt runs offscreen, and no test may reach model hubs."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
