"""Names of the per-frame arrays a video stores (``Video.save_array`` / ``load_array``).

They live in the data model because stages write them and review reads (and deletes) them:
both import the names from here instead of one importing the other.
"""

#: per-frame propagation confidence (uint8, 255 = certain), written by dense propagation
CONFIDENCE_ARRAY = "confidence"
#: per-frame dense low-confidence flags (a structured array of rows), written by dense propagation
FLAGS_ARRAY = "review_flags"
