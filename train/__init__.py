"""Training (paper recipe: on-the-fly libjpeg degradation, L1/VGG/LSGAN/TV losses) and evaluation of WCDGAN."""

from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()  # python -m train.<command>: a signal while it loads is one line
