CREATE TABLE "validation_client_minutely" (
	"client_id" text NOT NULL,
	"minute" timestamp with time zone NOT NULL,
	"code" text NOT NULL,
	"count" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "validation_client_minutely_key" ON "validation_client_minutely" ("client_id","minute","code");--> statement-breakpoint
CREATE INDEX "validation_client_minutely_minute_idx" ON "validation_client_minutely" ("minute");