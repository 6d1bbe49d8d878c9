"""The store tests again, against a real local PostgreSQL (Debian package ``postgresql``), started by the test run.

The session fixture ``postgres_server`` (tests/store/conftest.py) runs initdb into a temp directory and starts the
server on a private unix socket (as the ``postgres`` user when the tests run as root); each test gets a fresh
database. Without the server binaries every test here is skipped with the reason. CI installs the package.
"""

from __future__ import annotations

import pytest

from tests.store.test_audit import (  # noqa: F401 - re-collected here with the PostgreSQL database_url
    recorded,
    test_cards_match_the_response,
    test_every_hook_call_leaves_a_row,
    test_fetched_data_and_fetch_errors_are_recorded,
    test_no_audit_row_or_log_line_holds_phi,
    test_retention_removes_old_calls_and_their_cards_but_keeps_feedback,
    test_the_store_prunes_at_start_up,
)
from tests.store.test_feedback_store import (  # noqa: F401
    test_a_200_survives_a_sigkill_right_after_it,
    test_a_changed_decision_is_a_new_item,
    test_bad_bodies_are_400_and_store_nothing,
    test_every_field_of_an_item_is_stored,
    test_feedback_arriving_before_its_audit_row_is_corrected,
    test_feedback_through_the_observer_waits_for_queued_audit_rows,
    test_migrations_build_exactly_the_schema_module,
    test_resending_the_same_item_stores_it_once,
    test_same_key_with_another_comment_keeps_the_first,
    test_two_concurrent_writers_lose_nothing,
    test_unknown_cards_are_accepted_and_flagged,
)
from tests.store.test_report import (  # noqa: F401
    known,
    test_a_sessions_overrides_show_up_in_the_report,
    test_cli_db_upgrade_and_current,
    test_cli_report_json_and_plot,
    test_empty_database,
    test_figures_for_all_time,
    test_figures_since_this_week,
)


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


def test_the_server_is_postgresql(database_url: str) -> None:
    from sqlalchemy import text

    from cds_service.store.db import create_store_engine

    engine = create_store_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            assert conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
