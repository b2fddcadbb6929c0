SELECT got, CASE WHEN got THEN pg_catalog.set_config('idle_session_timeout', '60000', false) END FROM pg_catalog.pg_try_advisory_lock(123456789) AS t(got);
SELECT released, pg_catalog.set_config('idle_session_timeout', '0', false) FROM pg_catalog.pg_advisory_unlock(123456789) AS t(released);
