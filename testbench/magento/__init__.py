"""A simulated Magento 2 REST API: the store, its HTTP face and its faults."""
