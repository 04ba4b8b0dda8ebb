"""Reject hosts whose CPU cannot run the guest's CPU model.

A live guest keeps its CPU features; a destination that lacks one of them
fails the migration at the very end. Models are ordered oldest to newest in
``[scheduler] cpu_model_order``: a guest may move to the same or a newer
model. A model outside that list only matches itself. A guest without a
model of its own takes its source host's.
"""
from kvmplace.scheduler.filters import BaseFilter


class CpuModelFilter(BaseFilter):

    def __init__(self, conf):
        super().__init__(conf)
        self._rank = {m: i for i, m in enumerate(conf.scheduler.cpu_model_order)}

    @staticmethod
    def _needed(spec):
        return spec.instance.cpu_model or spec.source.cpu_model

    def _runs(self, have, need) -> bool:
        if need is None or have is None or have == need:
            return True
        have_rank = self._rank.get(have)
        need_rank = self._rank.get(need)
        return have_rank is not None and need_rank is not None and have_rank >= need_rank

    def passes_column(self, cols, spec):
        # A cluster has a handful of models: decide each one once.
        need = self._needed(spec)
        models = cols.values('cpu_model')
        verdict = {model: self._runs(model, need) for model in set(models)}
        return [verdict[model] for model in models]

    def reason(self, host, spec) -> str:
        need = self._needed(spec)
        if need in self._rank and host.cpu_model in self._rank:
            return f'CPU model {host.cpu_model} is older than the guest\'s {need}'
        return f'CPU model {host.cpu_model} cannot run the guest\'s {need}'
