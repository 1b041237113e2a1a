CREATE INDEX "inbound_deliveries_received_at_idx" ON "inbound_deliveries" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "delivery_attempts_message_id_idx" ON "delivery_attempts" USING btree ("message_id");--> statement-breakpoint
CREATE INDEX "email_deliveries_updated_at_idx" ON "email_deliveries" USING btree ("updated_at");--> statement-breakpoint
CREATE INDEX "events_created_at_idx" ON "events" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "messages_pending_due_idx" ON "messages" USING btree (coalesce("next_attempt_at", "created_at")) WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "messages_created_at_idx" ON "messages" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "captcha_attempts_at_idx" ON "captcha_attempts" USING btree ("at");