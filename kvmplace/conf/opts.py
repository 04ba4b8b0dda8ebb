"""Entry point for oslo-config-generator (namespace ``kvmplace``)."""
import kvmplace.conf


def list_opts():
    """[(group, [opts])] for every group kvmplace registers."""
    result = []
    for module in kvmplace.conf._MODULES:
        for group, opts in module.list_opts().items():
            result.append((group, opts))
    return result
