"""Discovery metadata: the three services, their prefetch templates and the data category each key feeds.

Kept as data so the discovery response, the prefetch resolver and the fallback fetch read one definition.
Templates stay inside the CDS Hooks restricted query subset: reads, type searches by ``patient``, token equality
on ``code``, ``_sort`` and ``_count``. CDS Hooks 2.0 has no relative-date token, so dates cannot narrow a template;
the FHIR door applies the lookback windows after reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.domain import Category

LOINC = "http://loinc.org"


def _codes(*codes: str) -> str:
    return ",".join(f"{LOINC}|{c}" for c in codes)


# Commonly resulted opioid urine screens (clinical spec, section 3), tramadol included. The service itself
# recognises every code of its opioid urine screen list; this narrower list only keeps the prefetch small.
URINE_SCREEN_PREFETCH_CODES = (
    "19295-5", "8222-2", "3879-4", "19597-4", "19411-8", "19642-8", "10998-3", "11246-6", "19482-9",
    "19486-0", "59673-4", "11235-9", "19550-3", "3773-9", "93495-0", "93494-3", "3414-0", "19321-9",
    "19710-3", "17718-8", "43219-5",
)  # fmt: skip
LIVER_PREFETCH_CODES = ("1742-6", "1744-2", "77144-4", "1920-8", "30239-8", "88112-8")
PREGNANCY_PREFETCH_CODES = ("82810-3", "2106-3", "2118-8", "2112-1", "2110-5", "80384-1", "80385-8")
LACTATION_PREFETCH_CODES = ("63895-7",)
EGFR_PREFETCH_CODES = (
    "98979-8", "62238-1", "77147-7", "48642-3", "48643-1", "33914-3", "50044-7", "88293-6", "88294-4",
)  # fmt: skip

P = "{{context.patientId}}"


@dataclass(frozen=True, slots=True)
class PrefetchKey:
    key: str
    template: str
    category: Category
    required: bool = True  # required data that can be had neither way -> 412


PREFETCH: tuple[PrefetchKey, ...] = (
    PrefetchKey("patient", f"Patient/{P}", Category.PATIENT, required=False),
    PrefetchKey("medicationRequests", f"MedicationRequest?patient={P}&_count=200", Category.MEDICATIONS),
    PrefetchKey("medicationStatements", f"MedicationStatement?patient={P}&_count=200", Category.MEDICATIONS),
    PrefetchKey("medicationDispenses", f"MedicationDispense?patient={P}&_count=200", Category.MEDICATIONS),
    PrefetchKey(
        "urineScreens",
        f"Observation?patient={P}&code={_codes(*URINE_SCREEN_PREFETCH_CODES)}&_sort=-date&_count=100",
        Category.URINE_SCREENS,
    ),
    PrefetchKey(
        "liverTests",
        f"Observation?patient={P}&code={_codes(*LIVER_PREFETCH_CODES)}&_sort=-date&_count=50",
        Category.LIVER_TESTS,
    ),
    PrefetchKey(
        "pregnancyObservations",
        f"Observation?patient={P}&code={_codes(*PREGNANCY_PREFETCH_CODES)}&_sort=-date&_count=50",
        Category.PREGNANCY,
    ),
    PrefetchKey(
        "lactationObservations",
        f"Observation?patient={P}&code={_codes(*LACTATION_PREFETCH_CODES)}&_sort=-date&_count=20",
        Category.LACTATION,
    ),
    PrefetchKey(
        "renalObservations",
        f"Observation?patient={P}&code={_codes(*EGFR_PREFETCH_CODES)}&_sort=-date&_count=20",
        Category.RENAL,
    ),
    PrefetchKey("conditions", f"Condition?patient={P}&_count=200", Category.CONDITIONS),
    PrefetchKey("allergies", f"AllergyIntolerance?patient={P}&_count=100", Category.ALLERGIES),
)


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    usage: str

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "usageRequirements": self.usage,
            "prefetch": {p.key: p.template for p in PREFETCH},
        }


_USAGE = (
    "Call with the naltrexone draft order in context. Send the prefetch keys you can; for any key left out, send "
    "fhirServer and fhirAuthorization (patient/*.read for the listed types) so the service can read it itself. "
    "Answers 412 when a required key is absent and no fhirServer is given."
)

SERVICES: dict[str, ServiceDefinition] = {
    s.id: s
    for s in (
        ServiceDefinition(
            id="naltrexone-order-select",
            hook="order-select",
            title="Naltrexone safety check (order selection)",
            description=(
                "Checks a naltrexone order as it is selected: current or recent opioids, opioid urine screens, "
                "liver injury, allergy, pregnancy, breastfeeding, kidney function, mood and the ordered regimen."
            ),
            usage=_USAGE + " Only the orders named in context.selections are checked.",
        ),
        ServiceDefinition(
            id="naltrexone-order-sign",
            hook="order-sign",
            title="Naltrexone safety check (order signing)",
            description=(
                "Checks every naltrexone order about to be signed for contraindications and cautions from the "
                "product labels, with the patient's evidence and one-click suggestions."
            ),
            usage=_USAGE,
        ),
        ServiceDefinition(
            id="naltrexone-medication-prescribe",
            hook="medication-prescribe",
            title="Naltrexone safety check (medication-prescribe, deprecated hook)",
            description=(
                "The same checks for EHRs that still call the CDS Hooks 1.0 medication-prescribe hook. "
                "Prefer naltrexone-order-sign."
            ),
            usage=_USAGE + " Orders are read from context.medications.",
        ),
    )
}
