ALTER TABLE "documents" DROP CONSTRAINT "documents_subscription_id_subscriptions_id_fk";
--> statement-breakpoint
ALTER TABLE "documents" DROP CONSTRAINT "documents_duplicate_of_documents_id_fk";
--> statement-breakpoint
ALTER TABLE "document_files" DROP CONSTRAINT "document_files_document_id_documents_id_fk";
