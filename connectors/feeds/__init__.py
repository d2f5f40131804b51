"""Marketplace feeds written from approved content (Google Merchant Center)."""
