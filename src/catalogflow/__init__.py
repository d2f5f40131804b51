"""catalogflow: AI workflows over an e-commerce catalog, as a Kafka stream pipeline."""

__version__ = "0.1.0"
