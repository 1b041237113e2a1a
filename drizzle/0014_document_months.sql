CREATE TABLE "document_months" (
	"user_id" bigint NOT NULL,
	"subscription_id" bigint NOT NULL,
	"type" text NOT NULL,
	"month" date NOT NULL,
	"duplicate" boolean NOT NULL,
	"n" integer NOT NULL,
	"first" date,
	"last" date,
	CONSTRAINT "document_months_user_id_subscription_id_type_month_duplicate_pk" PRIMARY KEY("user_id","subscription_id","type","month","duplicate")
);
