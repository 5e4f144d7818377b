"""Service layer: the operations the API and CLI share, each on one database session."""
