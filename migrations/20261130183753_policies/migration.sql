CREATE TABLE "device_activations" (
	"id" bigserial PRIMARY KEY,
	"serial_id" text NOT NULL,
	"device_id" text NOT NULL,
	"activated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "policies" (
	"id" text PRIMARY KEY,
	"name" text NOT NULL,
	"max_devices" integer NOT NULL,
	"duration_days" integer,
	"floating" boolean DEFAULT false NOT NULL,
	"heartbeat_seconds" integer DEFAULT 600 NOT NULL,
	"heartbeat_grace_seconds" integer DEFAULT 60 NOT NULL,
	"max_activations_per_day" integer,
	"offline_ttl_days" integer,
	"entitlements" text[] DEFAULT '{}'::text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "policies_heartbeat_seconds_range" CHECK ("heartbeat_seconds" between 5 and 86400),
	CONSTRAINT "policies_heartbeat_grace_range" CHECK ("heartbeat_grace_seconds" between 0 and 86400)
);
--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "lease_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "policy_id" text;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "inherits_max_devices" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "inherits_duration" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "expiring_notified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "expired_notified_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "serials" ADD COLUMN "limit_reached_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "device_activations_serial_time_idx" ON "device_activations" ("serial_id","activated_at");--> statement-breakpoint
CREATE INDEX "devices_lease_expires_idx" ON "devices" ("lease_expires_at") WHERE "active" and "lease_expires_at" is not null;--> statement-breakpoint
CREATE INDEX "serials_policy_id_idx" ON "serials" ("policy_id");--> statement-breakpoint
ALTER TABLE "serials" ADD CONSTRAINT "serials_policy_id_policies_id_fkey" FOREIGN KEY ("policy_id") REFERENCES "policies"("id");