"""Updog: venture-capital fund modeling (deterministic forecast and Monte Carlo simulation)."""

__version__ = "0.1.0"

#: Version of the engines (model + simulation). Stored with every result as provenance;
#: bump it whenever a change alters any number the engines produce.
ENGINE_VERSION = "0.3.0"
