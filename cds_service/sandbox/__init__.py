"""The sandbox: synthetic patients, a small FHIR server serving them and an EHR-like order page, on top of the
real service (``cds-service sandbox``). Nothing here is used when the service runs in production (``serve``).

- ``patients``    load the project's fixture patients and any FHIR R4 patient Bundle, rolling dates to today
- ``orders``      naltrexone draft orders and CDS Hooks request bodies built from a patient and an order choice
- ``fhir_server`` read/search FHIR endpoint (``/fhir``) answering exactly the service's prefetch templates
- ``page``        the ``/sandbox`` page and its small JSON API
- ``app``         the sandbox application: the service from ``create_app`` with the above mounted on it
- ``cli``         ``cds-service sandbox``
"""
