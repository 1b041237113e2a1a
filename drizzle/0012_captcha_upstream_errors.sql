ALTER TABLE "connections" ADD COLUMN "captcha_upstream_errors" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "connections" ADD COLUMN "captcha_upstream_error" text;