"""Stages: the operations that read and write a video (association, corrections, dense
propagation, pre-annotation, evaluation). Engines (``propagation``, ``models``) take arrays and
give arrays; a stage feeds them a video's frames and writes the result back through the project
store, inside a transaction where it changes more than one file.

Every stage has one face, ``run_<stage>(video, options, progress=None, cancel=None) -> result``,
with an options dataclass: ``association.run_associate`` (``AssociateOptions``),
``correct.run_correction`` (``CorrectionOptions``), ``propagate.run_propagate``
(``PropagateOptions``), ``preannotate.run_preannotate`` (``PreannotateOptions``),
``evaluate.run_evaluate`` (``EvaluateOptions``); training the pre-annotator on a project is
``train_preannotator.run_train_preannotator``. This package face imports nothing, so importing one
stage never loads another's heavy dependencies (torch for the pre-annotator). See
``docs/propagation.md``.
"""
