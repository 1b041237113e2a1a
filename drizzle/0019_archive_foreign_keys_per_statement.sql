-- The references of the archive's bulk tables — documents → subscriptions, documents.duplicate_of
-- → documents, document_files → documents — checked once per statement instead of once per
-- row. As foreign keys, PostgreSQL ran one lookup per row written: a 10,000-document sync
-- and its 10,000 file rows spent ~70 ms of CPU on them, half its statement (README
-- "Performance"). The next migration drops those foreign keys; these triggers keep what
-- they guaranteed:
--   - a row written (INSERT, or UPDATE of documents) names parents that exist; the parents
--     are locked FOR KEY SHARE, as a foreign key locks them, so a concurrent delete of one
--     waits for this transaction (and then cascades to what it wrote), and a delete that
--     committed first leaves the parent out of the lock's result: the statement fails;
--   - deleting parents deletes their children (subscriptions → documents → document_files,
--     one statement per level) and nulls duplicate_of where it named a deleted document;
--   - the ids they reference never change.
-- The other foreign keys of documents (email_deliveries, announcements) stay: nothing
-- writes those rows in bulk.
CREATE FUNCTION documents_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  subs bigint[];
  dups bigint[];
  locked bigint[];
BEGIN
  SELECT array_agg(DISTINCT subscription_id), array_agg(DISTINCT duplicate_of) FILTER (WHERE duplicate_of IS NOT NULL)
  INTO subs, dups FROM new_rows;
  SELECT array_agg(id) INTO locked FROM (SELECT id FROM subscriptions WHERE id = ANY (subs) FOR KEY SHARE) s;
  IF cardinality(locked) IS DISTINCT FROM cardinality(subs) THEN
    RAISE foreign_key_violation USING TABLE = 'documents', COLUMN = 'subscription_id',
      MESSAGE = format('documents: subscription %s does not exist',
        (SELECT min(p) FROM unnest(subs) p WHERE p <> ALL (coalesce(locked, '{}'))));
  END IF;
  IF dups IS NOT NULL THEN
    SELECT array_agg(id) INTO locked FROM (SELECT id FROM documents WHERE id = ANY (dups) FOR KEY SHARE) d;
    IF cardinality(locked) IS DISTINCT FROM cardinality(dups) THEN
      RAISE foreign_key_violation USING TABLE = 'documents', COLUMN = 'duplicate_of',
        MESSAGE = format('documents: duplicate_of %s does not exist',
          (SELECT min(p) FROM unnest(dups) p WHERE p <> ALL (coalesce(locked, '{}'))));
    END IF;
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
-- A sync's file rows name the documents its same statement inserted: locking those costs
-- little more than finding them (~10 ms for 10,000), and keeps one rule for every writer.
CREATE FUNCTION document_files_check_documents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ids bigint[];
  locked bigint;
BEGIN
  SELECT array_agg(document_id) INTO ids FROM new_rows;
  SELECT count(*) INTO locked FROM (SELECT FROM documents WHERE id = ANY (ids) FOR KEY SHARE) d;
  IF locked <> coalesce(cardinality(ids), 0) THEN
    RAISE foreign_key_violation USING TABLE = 'document_files', COLUMN = 'document_id',
      MESSAGE = format('document_files: document %s does not exist',
        (SELECT min(i) FROM unnest(ids) i WHERE NOT EXISTS (SELECT FROM documents WHERE id = i)));
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION subscriptions_delete_documents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM documents WHERE subscription_id IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION documents_delete_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM document_files WHERE document_id IN (SELECT id FROM old_rows);
  UPDATE documents SET duplicate_of = NULL WHERE duplicate_of IS NOT NULL AND duplicate_of IN (SELECT id FROM old_rows);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION referenced_id_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE foreign_key_violation USING TABLE = TG_TABLE_NAME, COLUMN = TG_ARGV[0],
    MESSAGE = format('%s.%s never changes (a reference checked by trigger)', TG_TABLE_NAME, TG_ARGV[0]);
END $$;
--> statement-breakpoint
CREATE TRIGGER documents_check_references_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION documents_check_references();
--> statement-breakpoint
CREATE TRIGGER documents_check_references_update AFTER UPDATE ON documents REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION documents_check_references();
--> statement-breakpoint
CREATE TRIGGER document_files_check_documents AFTER INSERT ON document_files REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION document_files_check_documents();
--> statement-breakpoint
CREATE TRIGGER subscriptions_delete_documents AFTER DELETE ON subscriptions REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_delete_documents();
--> statement-breakpoint
CREATE TRIGGER documents_delete_references AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION documents_delete_references();
--> statement-breakpoint
CREATE TRIGGER subscriptions_id_unchanged BEFORE UPDATE OF id ON subscriptions
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION referenced_id_unchanged('id');
--> statement-breakpoint
CREATE TRIGGER documents_id_unchanged BEFORE UPDATE OF id ON documents
  FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION referenced_id_unchanged('id');
--> statement-breakpoint
CREATE TRIGGER document_files_document_id_unchanged BEFORE UPDATE OF document_id ON document_files
  FOR EACH ROW WHEN (OLD.document_id IS DISTINCT FROM NEW.document_id) EXECUTE FUNCTION referenced_id_unchanged('document_id');
