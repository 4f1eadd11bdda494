"""A console replica for the two-process tests: the read model and a sync worker on a given
database, as the console runs them. Prints one JSON line a tenth of a second
(`{"holder", "version", "t"}`) and takes commands on stdin: `revoke <grant id>` (answers
`{"revoked": id, "t": commit time, "version": the version after it}`), `quit`.

    python -m tests.services.sync.replica DB_URL VAULT_KEY CLIENT_ID CLIENT_SECRET \
        CONNECT_URL DATA_URL NAME
"""

from __future__ import annotations

import json
import sys
import threading
import time

from services.kryptos import KryptosClient
from services.store import TokenVault, open_database
from services.store.readmodel import ReadModel
from services.sync import SyncWorker


def main(argv: list[str]) -> int:
    url, key, cid, secret, connect_url, data_url, name = argv
    db = open_database(url)
    rm = ReadModel(db)
    client = KryptosClient(cid, secret, connect_url, data_url, max_retries=0)
    worker = SyncWorker(client, TokenVault(db, key), rm, name=name, rate=50.0, tick=0.2,
                        lock_retry=0.3, grants_interval=2.0)
    worker.start()
    out = threading.Lock()

    def say(obj: dict) -> None:
        with out:
            print(json.dumps(obj), flush=True)

    def commands() -> None:
        for line in sys.stdin:
            parts = line.split()
            if parts[:1] == ["revoke"]:
                rm.mark_revoked(parts[1])
                committed = time.time()
                say({"revoked": parts[1], "t": committed, "version": rm.version()})
            elif parts[:1] == ["quit"]:
                break
        worker.stop()
        db.dispose()
        sys.exit(0)

    threading.Thread(target=commands, daemon=True).start()
    while True:
        say({"holder": worker.is_holder, "version": rm.version(), "t": time.time()})
        time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
