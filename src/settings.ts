import { sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Tx } from './db/client.js';
import { settings } from './db/schema/index.js';
import { AppError } from './errors.js';

/**
 * Powens-style configuration keys (`GET/POST /config`, see the README): strings in, strings
 * out. The defaults live here; the table only holds keys that were changed.
 */

const zeroOrOne = z.enum(['0', '1']);
export const settingSchemas = {
  force_pdf: zeroOrOne,
  'captcha.enabled': zeroOrOne,
  'captcha.max_retries': z.string().regex(/^\d+$/, 'a whole number').refine((v) => Number(v) >= 1 && Number(v) <= 100, 'between 1 and 100'),
  'notify.document_types': z.string().regex(/^[A-Za-z0-9_\-]*(,[A-Za-z0-9_\-]+)*$/, 'comma-separated document types'),
  /** "1": a bill is announced once per user, whatever ids it comes back under (dedupe/). */
  'notify.dedupe': zeroOrOne,
} as const;

export type SettingKey = keyof typeof settingSchemas;
export type Settings = Record<SettingKey, string>;

export const settingDefaults: Settings = {
  force_pdf: '0',
  'captcha.enabled': '0',
  'captcha.max_retries': '6',
  'notify.document_types': 'bill',
  'notify.dedupe': '1',
};

export async function readSettings(tx: Tx): Promise<Settings> {
  const rows = await tx.select({ key: settings.key, value: settings.value }).from(settings);
  return settingsOf(Object.fromEntries(rows.map((r) => [r.key, r.value])));
}

/**
 * The settings from the table's rows as `{key: value}` (what `json_object_agg(key, value)`
 * makes of them, for a statement that reads them on the way: archive/diff.ts).
 */
export function settingsOf(stored: Record<string, string>): Settings {
  const out = { ...settingDefaults };
  for (const [key, value] of Object.entries(stored)) if (Object.hasOwn(out, key)) out[key as SettingKey] = value;
  return out;
}

/** Check a partial update: unknown keys and bad values are refused as a whole. */
export function parseSettingsUpdate(input: unknown): Partial<Settings> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AppError('invalid_config', 'expected an object of config keys');
  }
  const issues: { key: string; message: string }[] = [];
  const out: Partial<Settings> = {};
  for (const [key, value] of Object.entries(input)) {
    // Own keys only: `constructor` or `__proto__` is inherited by every object, not a setting.
    if (!Object.hasOwn(settingSchemas, key)) {
      issues.push({ key, message: 'unknown config key' });
      continue;
    }
    const r = settingSchemas[key as SettingKey].safeParse(value);
    if (r.success) out[key as SettingKey] = r.data;
    else issues.push({ key, message: r.error.issues.map((i) => i.message).join('; ') });
  }
  if (issues.length) throw new AppError('invalid_config', 'invalid config', issues);
  return out;
}

export async function writeSettings(tx: Tx, update: Partial<Settings>): Promise<void> {
  const rows = Object.entries(update).map(([key, value]) => ({ key, value: value as string }));
  if (rows.length === 0) return;
  await tx
    .insert(settings)
    .values(rows)
    .onConflictDoUpdate({ target: settings.key, set: { value: sql`excluded.value`, updatedAt: sql`now()` } });
}

export const documentTypesToNotify = (s: Settings): string[] =>
  s['notify.document_types'].split(',').map((t) => t.trim()).filter(Boolean);
