"""Torch-free primitives shared by every stage: atomic files, colour conversion, the JPEG codec.

Everything here needs only numpy and OpenCV, so ``runtime/`` may import it.
"""
