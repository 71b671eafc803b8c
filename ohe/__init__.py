"""Open Health Exchange: wearable measurements into hospital FHIR servers."""

__version__ = "0.1.0"
