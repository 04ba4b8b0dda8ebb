"""``kvmplace``: the operator's and scheduler developer's command line."""
import sys

from kvmplace.cli import app


def main(argv=None) -> int:
    return app.KvmplaceApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
