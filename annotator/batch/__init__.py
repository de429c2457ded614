"""Batch work over a whole project: one task per video, on a local process pool or a Ray cluster.

``annotator.batch.driver.run_batch(project, stage, ...)`` runs one stage of
:data:`annotator.batch.stages.STAGES` (embed, preannotate, propagate, score, export, validate) for
every selected video. Each task (:func:`annotator.batch.stages.run_task`) calls the same library
function the CLI command and the window call (no second implementation), writes through the
project store, skips a video an annotator holds locked and records a per-video done marker
(:mod:`annotator.batch.markers`) so a rerun skips finished work. Runners:
:mod:`annotator.batch.runners` (spawn process pool, Ray). Export tasks write per-video staging
folders that :mod:`annotator.batch.export` assembles into the same files ``export`` writes.

Qt-free and importable without Ray. This package file imports nothing on purpose: a spawned pool
worker imports it before its initializer sets the worker environment (test kill hook).
"""
