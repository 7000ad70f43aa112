"""ACS (library system) interface and backends."""
