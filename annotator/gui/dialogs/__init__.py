"""Dialogs of the main window: new project / add video, settings, help (shortcut sheet, about)."""
