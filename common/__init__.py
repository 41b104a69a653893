"""Torch-free primitives shared by every stage: atomic files, colour, the JPEG codec, metrics, tile geometry.

Everything here needs only numpy and OpenCV, so ``runtime/`` may import it.
"""
