"""Stages: the operations that read and write a video (association, corrections, dense
propagation, pre-annotation, evaluation). Engines (``propagation``, ``models``) take arrays and
give arrays; a stage feeds them a video's frames and writes the result back through the project
store, inside a transaction where it changes more than one file."""
