"""Deployment: the local broker (catalogflow.localbroker), dashboards, alert rules and
the production stack. Only the Python parts are importable."""
