CREATE TABLE "usage_client_hourly" (
	"client_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"events" integer DEFAULT 0 NOT NULL,
	"quantity" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_daily" (
	"serial_id" text NOT NULL,
	"client_id" text NOT NULL,
	"day" timestamp with time zone NOT NULL,
	"events" integer DEFAULT 0 NOT NULL,
	"quantity" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_device_days" (
	"serial_id" text NOT NULL,
	"client_id" text NOT NULL,
	"day" timestamp with time zone NOT NULL,
	"device_id" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "validation_client_hourly" (
	"client_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"code" text NOT NULL,
	"count" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "usage_client_hourly_key" ON "usage_client_hourly" ("client_id","hour");--> statement-breakpoint
CREATE UNIQUE INDEX "usage_daily_key" ON "usage_daily" ("serial_id","day");--> statement-breakpoint
CREATE INDEX "usage_daily_client_day_idx" ON "usage_daily" ("client_id","day");--> statement-breakpoint
CREATE UNIQUE INDEX "usage_device_days_key" ON "usage_device_days" ("serial_id","day","device_id");--> statement-breakpoint
CREATE INDEX "usage_device_days_client_day_idx" ON "usage_device_days" ("client_id","day");--> statement-breakpoint
CREATE UNIQUE INDEX "validation_client_hourly_key" ON "validation_client_hourly" ("client_id","hour","code");--> statement-breakpoint
-- Backfill from the raw tables (the same statements as src/analytics/rollups.ts).
INSERT INTO "usage_daily" ("serial_id", "client_id", "day", "events", "quantity")
  SELECT "serial_id", min("client_id"), date_trunc('day', "recorded_at", 'UTC'), count(*), sum("quantity")
  FROM "usage_events" GROUP BY "serial_id", date_trunc('day', "recorded_at", 'UTC');
--> statement-breakpoint
INSERT INTO "usage_client_hourly" ("client_id", "hour", "events", "quantity")
  SELECT "client_id", date_trunc('hour', "recorded_at", 'UTC'), count(*), sum("quantity")
  FROM "usage_events" GROUP BY "client_id", date_trunc('hour', "recorded_at", 'UTC');
--> statement-breakpoint
INSERT INTO "usage_device_days" ("serial_id", "client_id", "day", "device_id")
  SELECT DISTINCT "serial_id", "client_id", date_trunc('day', "recorded_at", 'UTC'), "device_id" FROM "usage_events";
--> statement-breakpoint
INSERT INTO "validation_client_hourly" ("client_id", "hour", "code", "count")
  SELECT "client_id", "hour", "code", sum("count") FROM "validation_stats" GROUP BY "client_id", "hour", "code";
