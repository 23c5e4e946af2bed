"""TensorFlow adapters: the only code in ckptstore that imports TensorFlow.

TensorFlow is imported inside functions (``runtime.tf()``), never when these modules are
imported, so metadata-only use of ckptstore (CLI queries, listing, aliases) never pays for
TensorFlow's import. ``formats`` holds the checkpoint-format seam, ``reader`` reads saved tensors,
``frozen`` freezes graphs and loads frozen ones.
"""
