"""Database access: the embedded server, the engine, the ORM models and the schema check."""
