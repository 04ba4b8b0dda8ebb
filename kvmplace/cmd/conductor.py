"""``kvmplace-conductor``: the migration conductor service."""
import sys

from kvmplace.cmd import service


def main(argv=None) -> int:
    conf = service.prepare(sys.argv[1:] if argv is None else argv, 'kvmplace-conductor')
    from kvmplace.conductor import service as conductor_service
    return conductor_service.run(conf)


if __name__ == '__main__':
    sys.exit(main())
