CREATE TABLE "secret_fingerprints" (
	"name" text PRIMARY KEY,
	"fingerprint" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
