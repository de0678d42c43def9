"""Storage: SQLAlchemy Core tables, one repository per aggregate and a unit of work."""
