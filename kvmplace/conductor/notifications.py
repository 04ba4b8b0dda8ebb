"""The conductor's notifications (kvmplace.migration.<event>), best effort."""
from __future__ import annotations

import logging
from typing import Optional

from kvmplace.status import MigrationStatus

LOG = logging.getLogger(__name__)


class Notifications:
    """Sends ``kvmplace.migration.*`` through an oslo.messaging Notifier
    (None: notifications are off). A failing notifier never breaks a
    migration: it is logged and forgotten."""

    def __init__(self, notifier=None):
        self.notifier = notifier

    def notify(self, event: str, record: dict, payload: Optional[dict] = None) -> None:
        if self.notifier is None:
            return
        body = {'migration_id': record['id'], 'instance': record['instance'],
                'source': record['source'], 'dest': record.get('dest'),
                'status': record['status']}
        body.update(payload or {})
        try:
            if event == 'error':
                self.notifier.error({}, 'kvmplace.migration.error', body)
            else:
                self.notifier.info({}, f'kvmplace.migration.{event}', body)
        except Exception as exc:  # noqa: BLE001 - notifications never break a migration
            LOG.warning('notification %s failed: %s', event, exc)

    def final(self, record: dict) -> None:
        """``end`` for a completed migration, ``error`` for any other end."""
        if record['status'] == MigrationStatus.COMPLETED:
            self.notify('end', record, {'result': record.get('result')})
        else:
            self.notify('error', record, {'error': record.get('error')})
