CREATE TABLE "api_keys" (
	"id" text PRIMARY KEY,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"client_id" text,
	"secret_hash" text NOT NULL,
	"prefix" text NOT NULL,
	"expires_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" text PRIMARY KEY,
	"seq" bigserial,
	"actor_id" text NOT NULL,
	"actor_role" text NOT NULL,
	"action" text NOT NULL,
	"target_type" text NOT NULL,
	"target_id" text NOT NULL,
	"client_id" text,
	"changes" jsonb DEFAULT '{}' NOT NULL,
	"ip" text,
	"request_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "clients" (
	"id" text PRIMARY KEY,
	"client_number" text NOT NULL,
	"name" text NOT NULL,
	"contact_email_enc" text NOT NULL,
	"status" text DEFAULT 'ACTIVE' NOT NULL,
	"quota_per_minute" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "devices" (
	"id" text PRIMARY KEY,
	"serial_id" text NOT NULL,
	"device_id" text NOT NULL,
	"device_info_enc" text,
	"active" boolean DEFAULT true NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deactivated_at" timestamp with time zone,
	"validation_count" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"scope" text,
	"key" text,
	"request_hash" text NOT NULL,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY("scope","key")
);
--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" bigserial PRIMARY KEY,
	"type" text NOT NULL,
	"aggregate_id" text NOT NULL,
	"client_id" text,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"published_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "serials" (
	"id" text PRIMARY KEY,
	"client_id" text NOT NULL,
	"number_hash" text NOT NULL,
	"number_enc" text NOT NULL,
	"number_tail" text NOT NULL,
	"max_usage_count" integer DEFAULT 1 NOT NULL,
	"active_devices" integer DEFAULT 0 NOT NULL,
	"expires_at" timestamp with time zone,
	"is_demo" boolean DEFAULT false NOT NULL,
	"metadata" jsonb DEFAULT '{}' NOT NULL,
	"status" text DEFAULT 'ACTIVE' NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoke_reason" text,
	"batch_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "serials_active_devices_nonnegative" CHECK ("active_devices" >= 0)
);
--> statement-breakpoint
CREATE TABLE "usage_events" (
	"id" text PRIMARY KEY,
	"seq" bigserial,
	"serial_id" text NOT NULL,
	"client_id" text NOT NULL,
	"device_id" text NOT NULL,
	"kind" text DEFAULT 'USAGE' NOT NULL,
	"quantity" integer DEFAULT 1 NOT NULL,
	"feature" text,
	"ip" text,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "validation_stats" (
	"serial_id" text NOT NULL,
	"client_id" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"code" text NOT NULL,
	"count" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" text PRIMARY KEY,
	"webhook_id" text NOT NULL,
	"event_id" text NOT NULL,
	"event_type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"status" text DEFAULT 'PENDING' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_status_code" integer,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhooks" (
	"id" text PRIMARY KEY,
	"client_id" text,
	"url" text NOT NULL,
	"events" text[] NOT NULL,
	"secret_enc" text NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"disabled_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_secret_hash_key" ON "api_keys" ("secret_hash");--> statement-breakpoint
CREATE INDEX "api_keys_client_id_idx" ON "api_keys" ("client_id");--> statement-breakpoint
CREATE UNIQUE INDEX "audit_log_seq_key" ON "audit_log" ("seq");--> statement-breakpoint
CREATE INDEX "audit_log_target_idx" ON "audit_log" ("target_id");--> statement-breakpoint
CREATE INDEX "audit_log_actor_idx" ON "audit_log" ("actor_id");--> statement-breakpoint
CREATE INDEX "audit_log_client_idx" ON "audit_log" ("client_id","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "clients_client_number_key" ON "clients" ("client_number");--> statement-breakpoint
CREATE INDEX "clients_status_idx" ON "clients" ("status");--> statement-breakpoint
CREATE UNIQUE INDEX "devices_serial_device_key" ON "devices" ("serial_id","device_id");--> statement-breakpoint
CREATE INDEX "devices_serial_active_idx" ON "devices" ("serial_id","active");--> statement-breakpoint
CREATE INDEX "outbox_pending_idx" ON "outbox" ("id") WHERE "published_at" IS NULL;--> statement-breakpoint
CREATE INDEX "outbox_published_at_idx" ON "outbox" ("published_at");--> statement-breakpoint
CREATE UNIQUE INDEX "serials_number_hash_key" ON "serials" ("number_hash");--> statement-breakpoint
CREATE INDEX "serials_client_id_idx" ON "serials" ("client_id","id");--> statement-breakpoint
CREATE INDEX "serials_client_status_idx" ON "serials" ("client_id","status");--> statement-breakpoint
CREATE INDEX "serials_expires_at_idx" ON "serials" ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "usage_events_seq_key" ON "usage_events" ("seq");--> statement-breakpoint
CREATE INDEX "usage_events_serial_time_idx" ON "usage_events" ("serial_id","recorded_at");--> statement-breakpoint
CREATE INDEX "usage_events_client_time_idx" ON "usage_events" ("client_id","recorded_at");--> statement-breakpoint
CREATE UNIQUE INDEX "validation_stats_key" ON "validation_stats" ("serial_id","hour","code");--> statement-breakpoint
CREATE INDEX "validation_stats_client_hour_idx" ON "validation_stats" ("client_id","hour");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" ("status","next_attempt_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_webhook_idx" ON "webhook_deliveries" ("webhook_id","created_at");--> statement-breakpoint
CREATE INDEX "webhooks_client_id_idx" ON "webhooks" ("client_id");--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_client_id_clients_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("id");--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_serial_id_serials_id_fkey" FOREIGN KEY ("serial_id") REFERENCES "serials"("id");--> statement-breakpoint
ALTER TABLE "serials" ADD CONSTRAINT "serials_client_id_clients_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("id");--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhooks_id_fkey" FOREIGN KEY ("webhook_id") REFERENCES "webhooks"("id");--> statement-breakpoint
ALTER TABLE "webhooks" ADD CONSTRAINT "webhooks_client_id_clients_id_fkey" FOREIGN KEY ("client_id") REFERENCES "clients"("id");