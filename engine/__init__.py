"""CrackWatch engine: crack segmentation models, training, evaluation and (later) tiled inference.

``engine`` imports nothing from ``jobs`` or ``dashboard``; it takes explicit arguments and
reads no settings.
"""
