"""Flask blueprints: providers, links (OAuth), sync, devices, webhooks, health and metrics."""
