"""``python -m runtime.video``: see :mod:`runtime.video.cli`."""

import sys

from common.cli import exit_missing_extra, exit_quietly_while_starting

if __name__ == "__main__":  # before the imports below (seconds): Ctrl-C while they load ends in one line
    exit_quietly_while_starting()

try:
    import av  # noqa: F401 (the [video] extra, checked before anything imports it)
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "video")

from runtime.video.cli import main

if __name__ == "__main__":
    sys.exit(main())
