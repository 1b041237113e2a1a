import { createHash } from 'node:crypto';
import { ApiException, MessageStatus, Svix } from 'svix';
import type { Config } from '../config.js';
import { defaultEventTypes, eventTypes } from '../events/record.js';

/**
 * Svix API mode (SVIX_API_KEY set): Svix delivers, retries and logs; docrelay publishes each
 * event once to one Svix application for the whole installation (uid `docrelay`) and mirrors
 * its endpoints there (same id as `uid`, same secret, same event filter), so a customer's
 * receiver verifies the same way in both modes. An endpoint of ours with empty `events` is
 * mirrored with every type but the opt-in ones: Svix's "no filter" would send those too.
 */

export const svixAppUid = 'docrelay';

export interface SvixMirror {
  createEndpoint(e: { id: string; url: string; events: string[]; description: string | null; secret: string }): Promise<string>;
  deleteEndpoint(svixEndpointId: string): Promise<void>;
  rotateSecret(svixEndpointId: string, newSecret: string): Promise<void>;
  publish(e: { id: string; type: string; timestamp: string; data: unknown }): Promise<void>;
  /** Whether Svix has disabled the endpoint (it does after 5 days of failures), or null when Svix cannot say now. */
  isDisabled(svixEndpointId: string): Promise<boolean | null>;
  /** The endpoint's message attempts, newest first, as the delivery log shows them. */
  attempts(svixEndpointId: string, limit: number): Promise<SvixAttempt[]>;
  /** Enable the endpoint and re-send its failed messages since `since` (Svix `recover`); returns how many failed. */
  recover(svixEndpointId: string, since: Date): Promise<number>;
  enable(svixEndpointId: string): Promise<void>;
}

export interface SvixAttempt {
  msgId: string;
  eventType: string | null;
  statusCode: number | null;
  succeeded: boolean;
  durationMs: number;
  response: string;
  at: Date;
}

/** The Svix mirror of this configuration, or null in direct mode; built once (main.ts), so setup runs once. */
export function createSvixMirror(config: Pick<Config, 'svixApiKey' | 'svixServerUrl'>): SvixMirror | null {
  if (!config.svixApiKey) return null;
  return createMirror(new Svix(config.svixApiKey, config.svixServerUrl ? { serverUrl: config.svixServerUrl } : {}));
}

const isStatus = (err: unknown, ...codes: number[]) => err instanceof ApiException && codes.includes(err.code);

function createMirror(svix: Svix): SvixMirror {
  let ready: Promise<void> | null = null;
  // The application and the event types (endpoint filters must name known types); made
  // once per process, idempotently: `get_if_exists` and 409 on a known type.
  const setup = () =>
    (ready ??= (async () => {
      await svix.application.getOrCreate({ name: 'docrelay', uid: svixAppUid });
      for (const name of eventTypes) {
        await svix.eventType.create({ name, description: `docrelay ${name}` }).catch((err) => {
          if (!isStatus(err, 409)) throw err;
        });
      }
    })().catch((err) => {
      ready = null;
      throw err;
    }));

  return {
    async createEndpoint(e) {
      await setup();
      const out = await svix.endpoint.create(
        svixAppUid,
        { uid: e.id, url: e.url, secret: e.secret, description: e.description ?? '', filterTypes: e.events.length ? e.events : [...defaultEventTypes] },
        { idempotencyKey: `endpoint-create:${e.id}` },
      );
      return out.id;
    },
    async deleteEndpoint(id) {
      await svix.endpoint.delete(svixAppUid, id).catch((err) => {
        if (!isStatus(err, 404)) throw err;
      });
    },
    async rotateSecret(id, newSecret) {
      // Keyed by the new secret: the client's own retries of one rotation rotate once.
      const key = `rotate:${id}:${createHash('sha256').update(newSecret).digest('hex').slice(0, 32)}`;
      await svix.endpoint.rotateSecret(svixAppUid, id, { key: newSecret }, { idempotencyKey: key });
    },
    async isDisabled(id) {
      try {
        return (await svix.endpoint.get(svixAppUid, id)).disabled ?? false;
      } catch {
        return null;
      }
    },
    async attempts(id, limit) {
      const page = await svix.messageAttempt.listByEndpoint(svixAppUid, id, { limit, withMsg: true });
      return page.data.map((a) => ({
        msgId: a.msgId,
        eventType: a.msg?.eventType ?? null,
        statusCode: a.responseStatusCode > 0 ? a.responseStatusCode : null,
        succeeded: a.status === MessageStatus.Success,
        durationMs: a.responseDurationMs,
        response: a.response,
        at: a.timestamp,
      }));
    },
    async enable(id) {
      await svix.endpoint.patch(svixAppUid, id, { disabled: false });
    },
    async recover(id, since) {
      await svix.endpoint.patch(svixAppUid, id, { disabled: false });
      const failed = await svix.messageAttempt.listByEndpoint(svixAppUid, id, { status: MessageStatus.Fail, after: since, limit: 250 });
      await svix.endpoint.recover(svixAppUid, id, { since });
      return new Set(failed.data.map((a) => a.msgId)).size;
    },
    async publish(e) {
      await setup();
      try {
        // Our event id both as Svix's eventId and as idempotency key: a retried job never
        // makes a second message.
        await svix.message.create(
          svixAppUid,
          { eventType: e.type, eventId: e.id, payload: { type: e.type, timestamp: e.timestamp, data: e.data } },
          { idempotencyKey: e.id },
        );
      } catch (err) {
        if (!isStatus(err, 409)) throw err; // 409: that eventId is already there
      }
    },
  };
}
