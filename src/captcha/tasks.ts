import type { JobHandlerFactory } from '../jobs/handler.js';

// Placeholder until the captcha issue lands.
export const captchaResync: JobHandlerFactory<'captcha_resync'> = (deps) => async ({ connectionId }) => {
  deps.log.debug({ connectionId }, 'captcha_resync: not built yet');
};
