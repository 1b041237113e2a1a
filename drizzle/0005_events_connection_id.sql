ALTER TABLE "events" ADD COLUMN "connection_id" bigint;--> statement-breakpoint
CREATE INDEX "events_connection_id_idx" ON "events" USING btree ("connection_id");