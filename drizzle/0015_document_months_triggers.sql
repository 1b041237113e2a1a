-- document_months (src/db/schema/archive.ts) kept exact by statement-level triggers on
-- documents: each INSERT, UPDATE or DELETE statement folds the rows it changed into their
-- buckets in one statement, whatever its size (a 10,000-document sync touches a few dozen
-- buckets). Added rows only widen a bucket's bounds; where rows left a bucket (or moved
-- within it), its bounds are read again from documents (one month of one subscription,
-- on documents_user_subscription_date_idx). Buckets are written in key order, so two
-- statements that share buckets wait for each other rather than deadlock.
CREATE FUNCTION document_months_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO document_months AS m (user_id, subscription_id, type, month, duplicate, n, first, last)
  SELECT user_id, subscription_id, coalesce(type, ''), coalesce(date_trunc('month', date)::date, '-infinity'),
    duplicate_reason IS NOT NULL, count(*), min(date), max(date)
  FROM new_rows GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (user_id, subscription_id, type, month, duplicate) DO UPDATE
    SET n = m.n + excluded.n, first = least(m.first, excluded.first), last = greatest(m.last, excluded.last);
  RETURN NULL;
END $$;
--> statement-breakpoint
-- The buckets of `delta` (key and change of count) get their count changed and their
-- bounds read again; those left empty go.
CREATE FUNCTION document_months_settle(delta jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  WITH d AS (
    SELECT * FROM jsonb_to_recordset(delta) AS x(user_id bigint, subscription_id bigint, type text, month date, duplicate boolean, n int)
  )
  INSERT INTO document_months AS m (user_id, subscription_id, type, month, duplicate, n, first, last)
  SELECT d.user_id, d.subscription_id, d.type, d.month, d.duplicate, d.n, b.first, b.last
  FROM d, LATERAL (
    SELECT min(x.date) AS first, max(x.date) AS last FROM documents x
    WHERE x.user_id = d.user_id AND x.subscription_id = d.subscription_id
      AND x.date >= d.month AND x.date < d.month + interval '1 month'
      AND coalesce(x.type, '') = d.type AND (x.duplicate_reason IS NOT NULL) = d.duplicate
  ) b
  ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (user_id, subscription_id, type, month, duplicate) DO UPDATE
    SET n = m.n + excluded.n, first = excluded.first, last = excluded.last;
  DELETE FROM document_months m
  USING jsonb_to_recordset(delta) AS d(user_id bigint, subscription_id bigint, type text, month date, duplicate boolean)
  WHERE m.n <= 0 AND (m.user_id, m.subscription_id, m.type, m.month, m.duplicate) = (d.user_id, d.subscription_id, d.type, d.month, d.duplicate);
END $$;
--> statement-breakpoint
CREATE FUNCTION document_months_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM document_months_settle(coalesce(jsonb_agg(c), '[]'::jsonb)) FROM (
    SELECT user_id, subscription_id, type, month, duplicate, sum(n)::int AS n FROM (
      SELECT user_id, subscription_id, coalesce(type, '') AS type, coalesce(date_trunc('month', date)::date, '-infinity') AS month,
        duplicate_reason IS NOT NULL AS duplicate, -1 AS n FROM old_rows
      UNION ALL
      SELECT user_id, subscription_id, coalesce(type, ''), coalesce(date_trunc('month', date)::date, '-infinity'),
        duplicate_reason IS NOT NULL, 1 FROM new_rows
    ) moved GROUP BY 1, 2, 3, 4, 5
  ) c;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION document_months_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM document_months_settle(coalesce(jsonb_agg(c), '[]'::jsonb)) FROM (
    SELECT user_id, subscription_id, coalesce(type, '') AS type, coalesce(date_trunc('month', date)::date, '-infinity') AS month,
      duplicate_reason IS NOT NULL AS duplicate, -count(*)::int AS n
    FROM old_rows GROUP BY 1, 2, 3, 4, 5
  ) c;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER document_months_insert AFTER INSERT ON documents REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION document_months_added();
--> statement-breakpoint
CREATE TRIGGER document_months_update AFTER UPDATE ON documents REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION document_months_changed();
--> statement-breakpoint
CREATE TRIGGER document_months_delete AFTER DELETE ON documents REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION document_months_removed();
--> statement-breakpoint
-- The documents stored before this migration.
INSERT INTO document_months (user_id, subscription_id, type, month, duplicate, n, first, last)
SELECT user_id, subscription_id, coalesce(type, ''), coalesce(date_trunc('month', date)::date, '-infinity'),
  duplicate_reason IS NOT NULL, count(*), min(date), max(date)
FROM documents GROUP BY 1, 2, 3, 4, 5;
