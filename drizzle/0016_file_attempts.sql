ALTER TABLE "document_files" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "document_files" ADD COLUMN "claimed_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "document_files_pending_claimed_idx" ON "document_files" USING btree ("claimed_at") WHERE status = 'pending';