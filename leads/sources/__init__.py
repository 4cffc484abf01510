"""Lead sources: small adapters (webhook, JSON feed, CSV import) that all feed leads.intake.Intake.submit."""
