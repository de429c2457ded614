"""Exceptions with messages meant for users: what went wrong, where, and how to fix it."""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base class of every error the CLI prints as a one-line message instead of a traceback."""


class InputError(AnnotatorError):
    """Bad user input: unreadable file, wrong size, unknown class, malformed JSON..."""


class EditError(InputError):
    """An edit that cannot be done as asked (locked track, unknown track, bad geometry).

    Defined here, not in ``annotator.editing``, because prompt geometry is checked below the
    editing layer too (``models.prompts.check_box``, used by SAM and GrabCut)."""


class ProjectError(AnnotatorError):
    """A project or video folder is missing, corrupt, or of an unsupported schema version."""


class LockedError(ProjectError):
    """A video is locked by another annotator; it may be opened read-only."""


class ReadOnlyError(ProjectError):
    """A write was attempted on a video opened read-only."""
