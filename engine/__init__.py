"""CrackWatch engine: crack segmentation models, training, evaluation and tiled inference.

``engine`` imports nothing from ``jobs`` or ``dashboard``; it takes explicit arguments and
reads no settings. Importing it tunes glibc's allocator for large tensors once per process
(:mod:`engine.allocator`; opt out with ``CRACKWATCH_MALLOC_TUNING=0``).
"""

from engine.allocator import configure_allocator

configure_allocator()
