import { createRoute, z } from '@hono/zod-openapi';
import { applyCaptchaSettings } from '../archive/captcha/track.js';
import type { Deps } from '../deps.js';
import { newRouter } from '../http/router.js';
import { parseSettingsUpdate, readSettings, settingDefaults, writeSettings } from '../settings.js';
import { requireAdmin } from '../http/auth.js';
import { bearer, errorResponses } from '../http/openapi.js';

const ConfigSchema = z
  .object({
    force_pdf: z.string().openapi({ example: '0' }),
    'captcha.enabled': z.string().openapi({ example: '0' }),
    'captcha.max_retries': z.string(),
    'notify.document_types': z.string(),
    'notify.dedupe': z.string().openapi({ example: '1', description: '"1": a bill is announced once per user, even under new ids; "0": every new document is announced' }),
  })
  .openapi('Config');
const ConfigUpdate = z
  .object(Object.fromEntries(Object.entries(settingDefaults).map(([k, v]) => [k, z.unknown().optional().openapi({ type: 'string', example: v })])))
  .catchall(z.unknown())
  .openapi('ConfigUpdate');
const ok = { description: 'the whole config', content: { 'application/json': { schema: ConfigSchema } } };

const get = createRoute({ method: 'get', path: '/config', summary: 'Config keys (admin)', security: bearer, responses: { 200: ok, ...errorResponses } });
const post = createRoute({
  method: 'post',
  path: '/config',
  summary: 'Change some config keys (admin); unknown keys or bad values change nothing',
  security: bearer,
  // Validated by parseSettingsUpdate, which names every bad key at once (400 invalid_config):
  // the schema only describes the keys.
  request: { body: { content: { 'application/json': { schema: ConfigUpdate } }, required: true } },
  responses: { 200: ok, ...errorResponses },
});

export function configRoutes(deps: Deps) {
  return newRouter()
    .openapi(get, async (c) => {
      requireAdmin(c);
      return c.json(await readSettings(deps.db), 200);
    })
    .openapi(
      post,
      async (c) => {
        requireAdmin(c);
        // The body as parsed, not zod's copy of it: zod drops a `__proto__` key, which is no
        // setting either and must be refused like any unknown key.
        const update = parseSettingsUpdate(await c.req.json());
        const settings = await deps.db.transaction(async (tx) => {
          await writeSettings(tx, update);
          await applyCaptchaSettings(tx, update);
          return readSettings(tx);
        });
        return c.json(settings, 200);
      },
    );
}
