"""What filters and weighers share: one predicate, two forms.

A plugin writes its decision once, in whichever form reads best: per host
(``host_passes(host, spec)``, ``weigh(host, spec)``, as in Nova) or per
column (``passes_column(cols, spec)``, ``weigh_column(cols, spec)`` over a
:class:`kvmplace.scheduler.hosts.HostColumns`, numpy arrays welcome). The
base class derives the other form from it, so the two cannot disagree,
and the manager always calls the column form (one call per request, not
one per host). Writing both is refused when the class is defined: two
hand-written forms are two definitions, which is how they drifted before.

:func:`kvmplace.scheduler.testing.check_plugin` checks a plugin's forms
against each other on generated clusters.
"""
from __future__ import annotations

import sys


def describe(cls: type) -> None:
    """Give a plugin class without a docstring its module's, so the plugin
    reference (``list-plugins``) shows what the plugin does, not the base
    class's docstring."""
    if '__doc__' not in cls.__dict__ or not cls.__dict__['__doc__']:
        module = sys.modules.get(cls.__module__)
        doc = getattr(module, '__doc__', None)
        if doc:
            cls.__doc__ = doc


def one_form(cls: type, base: type, per_host: str, per_column: str) -> None:
    """Refuse a plugin class that defines both forms of its predicate."""
    host_owner = _owner(cls, per_host)
    column_owner = _owner(cls, per_column)
    if host_owner is not base and column_owner is not base:
        raise TypeError(
            f'{cls.__module__}.{cls.__qualname__} defines both {per_host} and '
            f'{per_column}: write one, the base class derives the other')


def written_form(obj: object, base: type, per_host: str, per_column: str) -> str:
    """Which form ``obj``'s class wrote: ``per_host`` or ``per_column``."""
    cls = type(obj)
    if _owner(cls, per_column) is not base:
        return per_column
    if _owner(cls, per_host) is not base:
        return per_host
    raise TypeError(f'{cls.__module__}.{cls.__qualname__} defines neither {per_host} '
                    f'nor {per_column}')


def _owner(cls: type, name: str) -> type:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    raise AttributeError(name)
