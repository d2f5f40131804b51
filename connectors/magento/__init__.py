"""Magento 2 REST: the connector the sink uses (its simulator is in the test bench)."""
