-- Custom migration: drizzle-kit generated the key and index changes below (see snapshot.json) but
-- cannot express partitioning, and a plain table cannot become a partitioned one in place. So:
-- usage_events is rebuilt as a table partitioned by month on recorded_at, with the same columns,
-- rows and seq sequence (the subscription's resume cursor continues without reuse).
--   * primary key (id, recorded_at): a unique index on a partitioned table must hold the key;
--   * seq: a plain index (its values come only from its sequence, unique by construction);
--   * partitions usage_events_YYYY_MM (UTC months) for every month holding rows plus the current
--     and the next 2 months, and usage_events_default so that no write ever lacks a partition;
--     the service creates the following months ahead (src/usage/partitions.ts).
-- Bounds are computed on UTC timestamps without time zone, so the session's TimeZone cannot move
-- them. Indexes are built after the copy (faster than maintaining them row by row).
DROP INDEX "usage_events_seq_key";--> statement-breakpoint
DROP INDEX "usage_events_serial_time_idx";--> statement-breakpoint
DROP INDEX "usage_events_client_time_idx";--> statement-breakpoint
ALTER TABLE "usage_events" RENAME CONSTRAINT "usage_events_pkey" TO "usage_events_old_pkey";--> statement-breakpoint
ALTER TABLE "usage_events" RENAME TO "usage_events_old";--> statement-breakpoint
CREATE TABLE "usage_events" (
	"id" text NOT NULL,
	"seq" bigint DEFAULT nextval('usage_events_seq_seq'::regclass) NOT NULL,
	"serial_id" text NOT NULL,
	"client_id" text NOT NULL,
	"device_id" text NOT NULL,
	"kind" text DEFAULT 'USAGE' NOT NULL,
	"quantity" integer DEFAULT 1 NOT NULL,
	"feature" text,
	"ip" text,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
) PARTITION BY RANGE ("recorded_at");--> statement-breakpoint
DO $$
DECLARE
  this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
  m timestamp;
BEGIN
  FOR m IN
    SELECT DISTINCT date_trunc('month', "recorded_at" AT TIME ZONE 'UTC') FROM "usage_events_old"
    UNION
    SELECT this_month + make_interval(months => i) FROM generate_series(0, 2) AS i
    ORDER BY 1
  LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF "usage_events" FOR VALUES FROM (%L) TO (%L)',
      'usage_events_' || to_char(m, 'YYYY_MM'), m AT TIME ZONE 'UTC', (m + interval '1 month') AT TIME ZONE 'UTC');
  END LOOP;
END
$$;--> statement-breakpoint
CREATE TABLE "usage_events_default" PARTITION OF "usage_events" DEFAULT;--> statement-breakpoint
INSERT INTO "usage_events" ("id", "seq", "serial_id", "client_id", "device_id", "kind", "quantity", "feature", "ip", "recorded_at")
SELECT "id", "seq", "serial_id", "client_id", "device_id", "kind", "quantity", "feature", "ip", "recorded_at" FROM "usage_events_old";--> statement-breakpoint
ALTER TABLE "usage_events" ADD CONSTRAINT "usage_events_pkey" PRIMARY KEY("id","recorded_at");--> statement-breakpoint
CREATE INDEX "usage_events_seq_idx" ON "usage_events" ("seq");--> statement-breakpoint
CREATE INDEX "usage_events_serial_time_idx" ON "usage_events" ("serial_id","recorded_at");--> statement-breakpoint
CREATE INDEX "usage_events_client_time_idx" ON "usage_events" ("client_id","recorded_at");--> statement-breakpoint
-- The sequence belonged to the old column (and would go with it): the new column owns it now,
-- and its position (setval) is untouched.
ALTER SEQUENCE "usage_events_seq_seq" OWNED BY "usage_events"."seq";--> statement-breakpoint
DROP TABLE "usage_events_old";--> statement-breakpoint
ANALYZE "usage_events";--> statement-breakpoint
-- The signed revocation list's query (src/revocations/revocation-service.ts): a few revoked
-- serials among many; without it the query scans every REVOKED entry of serials_client_status_idx.
CREATE INDEX "serials_revoked_idx" ON "serials" ("revoked_at") WHERE status = 'REVOKED';
