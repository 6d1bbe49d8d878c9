"""GET /cds-services: the three services, and prefetch templates inside the CDS Hooks restricted query subset."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from fastapi.testclient import TestClient

ALLOWED_SEARCH_PARAMS = {"patient", "code", "_count", "_sort"}


def test_lists_the_three_services(client: TestClient) -> None:
    r = client.get("/cds-services")
    assert r.status_code == 200
    services = {s["id"]: s for s in r.json()["services"]}
    assert {k: v["hook"] for k, v in services.items()} == {
        "naltrexone-order-select": "order-select",
        "naltrexone-order-sign": "order-sign",
        "naltrexone-medication-prescribe": "medication-prescribe",
    }
    for s in services.values():
        assert s["title"] and s["description"] and s["usageRequirements"]
        assert set(s) <= {"hook", "id", "title", "description", "usageRequirements", "prefetch"}


def test_prefetch_templates_stay_in_the_restricted_subset(client: TestClient) -> None:
    for service in client.get("/cds-services").json()["services"]:
        for key, template in service["prefetch"].items():
            tokens = set(re.findall(r"{{(.*?)}}", template))
            assert tokens == {"context.patientId"}, key
            path, _, query = template.partition("?")
            rtype = path.split("/")[0]
            assert rtype in {
                "Patient", "MedicationRequest", "MedicationStatement", "MedicationDispense",
                "Observation", "Condition", "AllergyIntolerance",
            }  # fmt: skip
            if not query:
                assert path == "Patient/{{context.patientId}}"
                continue
            params = dict(parse_qsl(urlsplit("x?" + query).query))
            assert set(params) <= ALLOWED_SEARCH_PARAMS, key
            assert params["patient"] == "{{context.patientId}}"
            if rtype == "Observation":
                # narrowed by code: every code carries its system
                assert all(c.startswith("http://loinc.org|") for c in params["code"].split(","))
                assert params["_sort"] == "-date"


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
