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
  close(): Promise<void>;
}

export function createNotifyServices(
  config: Pick<Config, 'smtpUrl' | 'svixApiKey' | 'svixServerUrl' | 'fetchAllowPrivateNetworks'>,
  overrides: Partial<Omit<NotifyServices, 'close'>> = {},
): NotifyServices {
  const mailer = overrides.mailer !== undefined ? overrides.mailer : config.smtpUrl ? nodemailer.createTransport(config.smtpUrl) : null;
  const webhooks = overrides.webhooks ?? createWebhookClient({ allowPrivate: config.fetchAllowPrivateNetworks });
  return {
    mailer,
    svix: overrides.svix !== undefined ? overrides.svix : createSvixMirror(config),
    webhooks,
    close: async () => {
      webhooks.close();
      (mailer as Transporter | null)?.close?.();
    },
  };
}
