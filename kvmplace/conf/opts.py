"""Entry point for oslo-config-generator (namespace ``kvmplace``)."""
from kvmplace.conf import estimator
from kvmplace.conf import scheduler

_MODULES = (scheduler, estimator)


def list_opts():
    """[(group, [opts])] for every group kvmplace registers."""
    result = []
    for module in _MODULES:
        for group, opts in module.list_opts().items():
            result.append((group, opts))
    return result
