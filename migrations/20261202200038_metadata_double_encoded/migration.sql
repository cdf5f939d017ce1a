-- Custom (data) migration: repairs serials.metadata stored double-encoded. On PostgreSQL (postgres.js)
-- createSerial / createSerials bound the metadata's JSON text as a jsonb parameter, which the driver
-- JSON-encoded once more: the column held a jsonb *string* ("{\"plan\":\"gold\"}") instead of the
-- object. Only strings whose text is a JSON object are decoded; any other string (not JSON, an
-- array, a scalar, a string encoded twice) is left as it is. updated_at is kept: the value did not
-- change, only its encoding. The other jsonb columns (audit_log.changes, outbox.payload,
-- webhook_deliveries.payload, idempotency_keys.response) were written as objects and need nothing.
-- PL/pgSQL because PostgreSQL 15 has no pg_input_is_valid: a text that is not JSON is skipped
-- instead of failing the migration.
DO $$
DECLARE
  r record;
  decoded jsonb;
BEGIN
  FOR r IN SELECT "id", "metadata" #>> '{}' AS "text" FROM "serials" WHERE jsonb_typeof("metadata") = 'string' LOOP
    CONTINUE WHEN left(ltrim(r."text"), 1) <> '{';
    BEGIN
      decoded := r."text"::jsonb;
    EXCEPTION WHEN others THEN
      CONTINUE;
    END;
    IF jsonb_typeof(decoded) = 'object' THEN
      UPDATE "serials" SET "metadata" = decoded WHERE "id" = r."id";
    END IF;
  END LOOP;
END
$$;
