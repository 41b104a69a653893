from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()  # python -m export.<command>: a signal while it loads is one line
