SELECT pg_catalog.pg_try_advisory_lock(123456789);
SELECT pg_catalog.pg_advisory_unlock(123456789);
