"""FHIR output: codes table, resource builders (R5/R4), identifiers, validation and the client."""
