import type { JobHandlerFactory } from '../jobs/handler.js';

// Placeholders until the notifications issue lands: the jobs are queued for real, and end here.
export const announceDocument: JobHandlerFactory<'announce_document'> = (deps) => async ({ documentId }) => {
  deps.log.debug({ documentId }, 'announce_document: notifications not built yet');
};
export const deliverMessage: JobHandlerFactory<'deliver_message'> = (deps) => async ({ messageId }) => {
  deps.log.debug({ messageId }, 'deliver_message: notifications not built yet');
};
export const sendDocumentEmail: JobHandlerFactory<'send_document_email'> = (deps) => async ({ documentId }) => {
  deps.log.debug({ documentId }, 'send_document_email: notifications not built yet');
};
