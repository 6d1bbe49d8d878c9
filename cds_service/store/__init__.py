"""The feedback loop's storage: PHI-free audit trail of hook calls, clinician feedback, and the override report.

db           engine from ``[feedback] database_url`` (SQLite WAL by default, PostgreSQL via psycopg 3),
             Alembic migrations, the store's errors (StoreConfigError, StoreUnavailable)
schema       the tables, and what "the same feedback item" means
writes       synchronous writes (audit rows, feedback, retention pruning), one transaction each
observer     StoreObserver: the CallObserver that queues audit rows and stores feedback durably
integration  install_store(app, settings): lifespan, GET /readyz
report       per-rule figures (fired, accepted, overridden, override rate, reasons, latency) and the plot
cli          ``cds-service report`` and ``cds-service db``
"""

from cds_service.store.db import StoreConfigError, StoreUnavailable
from cds_service.store.observer import StoreObserver

__all__ = ["StoreConfigError", "StoreObserver", "StoreUnavailable"]
