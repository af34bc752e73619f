"""moto's server for the tests, with DynamoDB's writes made atomic.

moto serves each request on a thread of its own and checks a write's condition without a lock,
so two conditional writes to one key at the same moment can both succeed: something DynamoDB
never does, and which the tests of concurrent runs (one record per run, one claim per hour)
would then report as our bug. Here every item write holds one lock. Arguments are moto.server's.
"""
import functools
import threading

from moto import server
from moto.dynamodb.models import DynamoDBBackend

_WRITES = threading.RLock()


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
