"""Alembic environment: the URL comes from storage.migrate.alembic_config (never from a file)."""
import sqlalchemy as sa
from alembic import context

from storage.tables import metadata

url = context.config.attributes["database_url"]
MIGRATION_LOCK = 4_242_001          # pg_advisory_lock key of klanten-api migrations


def run_migrations_online() -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # several machines may start (and migrate) at once: one migrates, the others wait and find it done
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            connection.commit()
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
