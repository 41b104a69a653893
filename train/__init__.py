"""Training (paper recipe: on-the-fly libjpeg degradation, L1/VGG/LSGAN/TV losses) and evaluation of WCDGAN."""
