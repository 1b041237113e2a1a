CREATE TABLE "announcements" (
	"user_id" bigint NOT NULL,
	"fingerprint" text NOT NULL,
	"reason" text NOT NULL,
	"document_id" bigint,
	"announced_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "announcements_user_id_fingerprint_pk" PRIMARY KEY("user_id","fingerprint")
);
--> statement-breakpoint
ALTER TABLE "documents" ADD COLUMN "duplicate_of" bigint;--> statement-breakpoint
ALTER TABLE "documents" ADD COLUMN "duplicate_reason" text;--> statement-breakpoint
ALTER TABLE "announcements" ADD CONSTRAINT "announcements_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "announcements" ADD CONSTRAINT "announcements_document_id_documents_id_fk" FOREIGN KEY ("document_id") REFERENCES "public"."documents"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "announcements_document_id_idx" ON "announcements" USING btree ("document_id") WHERE document_id is not null;--> statement-breakpoint
ALTER TABLE "documents" ADD CONSTRAINT "documents_duplicate_of_documents_id_fk" FOREIGN KEY ("duplicate_of") REFERENCES "public"."documents"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "documents_duplicate_of_idx" ON "documents" USING btree ("duplicate_of") WHERE duplicate_of is not null;