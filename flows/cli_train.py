"""Commands registered on flows.cli_app (placeholder until implemented)."""
