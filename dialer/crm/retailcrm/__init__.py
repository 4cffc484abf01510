"""RetailCRM (API v5, X-API-KEY): orders to confirm in as leads, call outcomes out as order edits."""
