"""Magento 2 REST: the connector the sink uses, and a test simulator of the API."""
