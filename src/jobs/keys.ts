/**
 * Job keys shared by the code that queues a job and the code that cancels it: one
 * spelling, so that erasure removes exactly the job the captcha tracking queued.
 */
export const captchaJobKey = (connectionId: number) => `captcha:${connectionId}`;
