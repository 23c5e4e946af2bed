"""The flows: operations that span the database and the object area (and TensorFlow).

Each flow is a function of a :class:`~ckptstore.flows.backend.Backend` (one database plus one
object area); the ``Store`` facade above calls them, the metadata, files and tf layers below do
the work. ``checkpoints`` saves and reads back, ``retention`` and ``runs`` delete, ``exports``
freezes and loads, ``aliases`` names checkpoints and exports, ``imports`` registers vanilla TensorFlow
directories, ``maintenance`` verifies and collects garbage.
"""
