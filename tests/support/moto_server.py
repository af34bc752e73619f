"""moto's server for the tests, with DynamoDB's writes made atomic.

moto serves each request on a thread of its own and checks a write's condition without a lock,
so two conditional writes to one key at the same moment can both succeed: something DynamoDB
never does, and which the tests of concurrent runs (one record per run, one claim per hour)
would then report as our bug. Here every item write holds one lock.

moto also backs up every table a transaction touches with `copy.deepcopy` before it writes, so
each commit (a Put and its neighbours' ConditionChecks) copied every commit record written
before it: quadratic time, and at 2,000 hours more memory than the machine has. A transaction
without an Update (which edits an item in place) only replaces or removes items, so a copy of
the table's item index is as good a backup. Arguments are moto.server's.
"""
import copy
import functools
import threading

import moto.dynamodb.models as dynamodb_models
from moto import server
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

_WRITES = threading.RLock()
_INDEX_BACKUP = threading.local()


class _Backups:
    """`copy` as moto's DynamoDB backend sees it: a table's backup is a copy of its item index
    while a transaction without an Update runs on this thread."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table) and getattr(_INDEX_BACKUP, "on", False):
            backup = copy.copy(value)
            backup.items = copy.copy(value.items)
            if value.has_range_key:
                for hash_key, ranges in value.items.items():
                    backup.items[hash_key] = dict(ranges)
            return backup
        return copy.deepcopy(value, memo)


def _index_backup(method):
    @functools.wraps(method)
    def transact(self, transact_items, *args, **kwargs):
        _INDEX_BACKUP.on = all("Update" not in item for item in transact_items)
        try:
            return method(self, transact_items, *args, **kwargs)
        finally:
            _INDEX_BACKUP.on = False

    return transact


dynamodb_models.copy = _Backups()
DynamoDBBackend.transact_write_items = _index_backup(DynamoDBBackend.transact_write_items)


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _WRITES:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    server.main()
