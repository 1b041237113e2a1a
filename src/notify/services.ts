import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config.js';
import { createWebhookClient, type WebhookClient } from './http.js';
import { createSvixMirror, type SvixMirror } from './svix.js';

/**
 * The notification services, built once in main.ts (tests build their own) and carried on
 * Deps, never imported as module singletons: the SMTP transport, the Svix client, and the
 * HTTP agents that deliver webhooks. `close` ends their pooled connections on shutdown.
 */
export interface NotifyServices {
  /** null while SMTP_URL is unset: deliveries record `smtp_not_configured`. */
  mailer: Pick<Transporter, 'sendMail'> | null;
  /** null in direct mode (SVIX_API_KEY unset). */
  svix: SvixMirror | null;
  webhooks: WebhookClient;
  /**
   * Posts operational events to OPS_WEBHOOK_URL (null when unset). That URL is the
   * operator's own configuration, not a customer's input: it may be on a private network
   * (an internal alert relay), so this client does not apply the private-address rule.
   */
  ops: WebhookClient | null;
  close(): Promise<void>;
}

export function createNotifyServices(
  config: Pick<Config, 'smtpUrl' | 'svixApiKey' | 'svixServerUrl' | 'fetchAllowPrivateNetworks' | 'ops'>,
  overrides: Partial<Omit<NotifyServices, 'close'>> = {},
): NotifyServices {
  const mailer = overrides.mailer !== undefined ? overrides.mailer : config.smtpUrl ? nodemailer.createTransport(config.smtpUrl) : null;
  const webhooks = overrides.webhooks ?? createWebhookClient({ allowPrivate: config.fetchAllowPrivateNetworks });
  const ops = overrides.ops !== undefined ? overrides.ops : config.ops.webhookUrl ? createWebhookClient({ allowPrivate: true }) : null;
  return {
    mailer,
    svix: overrides.svix !== undefined ? overrides.svix : createSvixMirror(config),
    webhooks,
    ops,
    close: async () => {
      webhooks.close();
      ops?.close();
      (mailer as Transporter | null)?.close?.();
    },
  };
}
