"""PyQt5 user interface: the only package that imports Qt.

Split as Cutie's GUI is: views (``main_window`` lays out ``canvas``, ``timeline``, ``track_panel``,
``class_picker``, ``toolbar``; they show what the controller's signals carry), the ``controller``
(the open video, its ``EditSession``, selection, tools, one undo order; ``track_actions`` drives it
for corrections) and the ``resources`` manager (SAM engine and embeddings, read-ahead, autosave).
The shell (``menus``, ``dialogs``, ``jobs_panel``) and the ``pipeline`` are composed by
``MainWindow`` and use only its public members; the pipeline sees it as a
``pipeline.host.PipelineHost`` and never imports it. The engines and stages below know no window.
"""
