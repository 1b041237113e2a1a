DROP INDEX "document_files_sha256_idx";--> statement-breakpoint
DROP INDEX "document_files_original_sha256_idx";--> statement-breakpoint
DROP INDEX "document_files_thumbnail_sha256_idx";--> statement-breakpoint
CREATE INDEX "document_files_sha256_idx" ON "document_files" USING btree ("sha256") WHERE sha256 is not null;--> statement-breakpoint
CREATE INDEX "document_files_original_sha256_idx" ON "document_files" USING btree ("original_sha256") WHERE original_sha256 is not null;--> statement-breakpoint
CREATE INDEX "document_files_thumbnail_sha256_idx" ON "document_files" USING btree ("thumbnail_sha256") WHERE thumbnail_sha256 is not null;