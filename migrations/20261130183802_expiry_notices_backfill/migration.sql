-- Custom (data) migration: drizzle-kit cannot express a backfill. Serials that expired before
-- lifecycle events existed are marked as already announced, so the first scheduler run after the
-- upgrade does not send a burst of serial.expiring / serial.expired for old news.
UPDATE "serials" SET "expiring_notified_at" = now(), "expired_notified_at" = now()
WHERE "expires_at" IS NOT NULL AND "expires_at" <= now();
