CREATE TABLE "erasures" (
	"kind" text NOT NULL,
	"id" bigint NOT NULL,
	"erased_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "erasures_kind_id_pk" PRIMARY KEY("kind","id")
);
