/**
 * One sync of a connection, as the archive applies it (archive/diff.ts): the connection's
 * state and every subscription and document the aggregator listed, already checked and
 * normalised (inbound/ makes it from a CONNECTION_SYNCED payload). Field names are
 * Powens' own, as in the API's objects.
 */
export interface ConnectionSync {
  id: number;
  id_user: number;
  id_connector: number | null;
  state: string | null;
  error_message: string | null;
  last_update: Date | null;
  next_try: Date | null;
  active: boolean;
  subscriptions: SubscriptionSync[];
  /**
   * Whether the sync listed subscriptions at all. An unlisted set says nothing about them
   * and archives none; an empty list says there are none left.
   */
  subscriptionsListed: boolean;
}

export interface SubscriptionSync {
  id: number;
  number: string | null;
  label: string | null;
  subscriber: string | null;
  /** Calendar dates: `YYYY-MM-DD`. */
  validity: string | null;
  renewdate: string | null;
  /** Null: the connection's last_update stands for it. */
  last_update: Date | null;
  documents: DocumentSync[];
}

export interface DocumentSync {
  id: number;
  name: string | null;
  type: string | null;
  /** Calendar dates: `YYYY-MM-DD`. */
  date: string | null;
  duedate: string | null;
  number: string | null;
  issuer: string | null;
  total_amount: number | null;
  untaxed_amount: number | null;
  vat: number | null;
  currency: string | null;
  income: boolean | null;
  has_file_on_website: boolean | null;
  /** Where the file can be downloaded from, if anywhere. */
  url: string | null;
  /** Null: the connection's last_update stands for it. */
  last_update: Date | null;
}
