"""thrifty: answer each LLM request at the cheapest place that meets its bar, and prove it."""

__version__ = "0.1.0"
