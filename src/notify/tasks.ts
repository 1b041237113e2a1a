/** The notification tasks, as worker.ts wires them. */
export { announceDocument, announceDocuments } from './announce.js';
export { deliverMessage, deliverMessages } from './deliver.js';
export { sendDocumentEmail } from './email.js';
export { publishEvent } from './publish.js';
export { sweepStrandedMessages } from './sweep.js';
export { sendOpsEmail, sendOpsWebhook } from './ops-send.js';
