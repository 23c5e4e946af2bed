"""The files layer: the object-area interface and its local implementation, digests, and the
commit protocol that lands files and metadata together (``commit``)."""
