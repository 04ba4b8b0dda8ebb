"""SQL records of the conductor (SQLAlchemy models, alembic migrations, API)."""
