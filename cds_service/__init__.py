"""CDS Hooks service that checks naltrexone orders for contraindications."""

__version__ = "0.1.0"
