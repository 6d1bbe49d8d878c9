"""Card content (TOML files), installed as the package ``cds_service.card_content``; no code here."""
