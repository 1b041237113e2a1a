export * from './archive.js';
export * from './files.js';
export * from './events.js';
export * from './captcha.js';
export * from './dedupe.js';
export * from './ops.js';
export * from './jobs.js';
