"""The sandbox page in a real headless Chromium, against a real sandbox server on a free loopback port.

A clinician's path: pick the opioid-active patient, order oral naltrexone 50 mg, see the stop card on select,
sign, accept "Remove the naltrexone order"; then on a pregnant patient, with the service fetching the chart
itself from the sandbox's FHIR server, override the caution card with a reason and sign. Feedback must reach the
service (seen by an observer and on the page). Screenshots go to ``artifacts/`` (git-ignored).

Browser: Debian's ``chromium`` package (``/usr/bin/chromium``), driven by the PyPI ``playwright`` package with
``executable_path``; no browser is downloaded. The test skips only when that Chromium is absent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from cds_service.hooks.models import FeedbackItem
from cds_service.observe import CallRecord
from cds_service.sandbox.app import create_sandbox_app, load_store

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self.feedback: list[FeedbackItem] = []

    async def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)

    async def on_feedback(self, service_id: str, items: list[FeedbackItem]) -> None:
        self.feedback.extend(items)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    store, warnings = load_store(datetime.now(UTC).date())
    assert warnings == []
    app = create_sandbox_app(store, observers=[recorder])
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="sandbox-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the sandbox server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", recorder
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_order_stop_card_remove_then_override_a_caution(sandbox: tuple[str, Recorder], browser: Any) -> None:
    from playwright.sync_api import expect

    base, recorder = sandbox
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.set_default_timeout(10_000)

    # Load: the service answers discovery, the patient list is there.
    page.goto(f"{base}/sandbox")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#service-status")).to_have_text("Service ready: 3 CDS services")

    # Pick the opioid-active patient; the chart shows the oxycodone order.
    page.locator('[data-patient-id="sbx-opioid-active"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Opioid-Active Test")
    expect(page.locator("#panel-meds")).to_contain_text("oxycodone hydrochloride 5 MG Oral Tablet")

    # Order oral naltrexone 50 mg: order-select fires and the stop card appears.
    page.get_by_label("Medication", exact=True).select_option("oral")
    expect(page.get_by_label("Dose", exact=True)).to_have_value("50")
    stop = page.locator('.card-critical[data-rule="opioid-active"]')
    expect(stop).to_contain_text("Active opioid (oxycodone): naltrexone will precipitate withdrawal")
    expect(stop.locator(".badge")).to_contain_text("Stop")
    expect(page.locator("#cds-meta")).to_contain_text("order-select")

    # Sign: order-sign fires, the stop card is shown again and the order is not signed.
    page.get_by_role("button", name="Sign order").click()
    expect(page.locator("#cds-meta")).to_contain_text("order-sign")
    expect(page.locator("#order-status")).to_contain_text("Not signed")
    stop = page.locator('.card-critical[data-rule="opioid-active"]')
    expect(stop).to_contain_text("Patient's evidence")
    page.screenshot(path=str(ARTIFACTS / "sandbox.png"))

    # Accept "Remove the naltrexone order": feedback is posted and the draft is removed.
    stop.get_by_role("button", name="Remove the naltrexone order").click()
    expect(stop.locator(".card-feedback")).to_contain_text("Feedback sent: accepted")
    expect(page.locator("#order-status")).to_have_text("Naltrexone order removed (suggestion accepted).")

    # Another patient, chart fetched by the service itself: override the pregnancy caution with a reason.
    page.locator('[data-patient-id="sbx-pregnant-urine-negative"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pregnant Test")
    page.get_by_label("The service fetches it from this sandbox's FHIR server").check()
    page.get_by_label("Medication", exact=True).select_option("oral")
    caution = page.locator('.card-warning[data-rule="pregnancy"]')
    expect(caution).to_contain_text("Pregnant")
    expect(caution.locator(".badge")).to_contain_text("Caution")
    expect(page.locator("#cds-meta")).to_contain_text("service fetched the chart")
    caution.get_by_text("Override…").click()
    caution.get_by_label("Override reason").select_option(index=1)
    reason = caution.get_by_label("Override reason").locator("option:checked").inner_text()
    caution.get_by_label("Comment (optional)").fill("Discussed with obstetrics; patient informed.")
    caution.get_by_role("button", name="Override", exact=True).click()
    expect(caution.locator(".card-feedback")).to_contain_text(f"Feedback sent: overridden — {reason}")
    page.get_by_role("button", name="Sign order").click()
    expect(page.locator("#order-status")).to_contain_text("Order signed")
    expect(caution.locator(".card-feedback")).to_have_text(f"\u2713 Overridden ({reason}) earlier in this order.")

    # The service's own record of it, shown on the Activity tab too.
    page.get_by_role("tab", name="Activity").click()
    expect(page.locator("#activity")).to_contain_text("feedback: overridden")
    page.screenshot(path=str(ARTIFACTS / "sandbox-override.png"))

    outcomes = [
        (f.outcome, (f.overrideReason.reason or {}).get("display") if f.overrideReason else None)
        for f in recorder.feedback
    ]
    assert outcomes == [("accepted", None), ("overridden", reason)]
    assert recorder.feedback[0].acceptedSuggestions and recorder.feedback[1].overrideReason is not None
    assert recorder.feedback[1].overrideReason.userComment == "Discussed with obstetrics; patient informed."
    fetched = [c for c in recorder.calls if c.provenance and {how for _, how in c.provenance} == {"fetched"}]
    assert fetched, "no hook call read the chart through the sandbox FHIR server"
    assert problems == []
    page.close()
