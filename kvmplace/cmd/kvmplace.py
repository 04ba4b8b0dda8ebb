"""``kvmplace``: the operator's and scheduler developer's command line."""
import gc
import sys

from kvmplace.cli import app


def main(argv=None) -> int:
    code = app.KvmplaceApp().run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # Run as the program (the console script passes no argv), the
        # process ends now. Its last collection would walk, and free one by
        # one, every object still held (a 100,000-host answer and its
        # inventory: 0.45 s); frozen, they go with the process. Output is
        # flushed and atexit handlers run as usual.
        gc.freeze()
    return code


if __name__ == '__main__':
    sys.exit(main())
