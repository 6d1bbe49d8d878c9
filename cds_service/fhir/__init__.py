"""The FHIR door: the only package that reads FHIR JSON."""
