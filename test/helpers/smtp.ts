import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/**
 * A real SMTP server on 127.0.0.1 (nodemailer's smtp-server) that parses every mail it
 * accepts with mailparser. `reject(n)` decides whether the n-th DATA is refused, and how.
 */
export interface SmtpSink {
  url: string;
  mails: ParsedMail[];
  attempts: number;
  reject: (n: number) => { code: number; message: string } | null;
  /** Runs before the n-th DATA is accepted (the mail is already parsed); the SMTP answer waits for it. */
  beforeAccept: (n: number, mail: ParsedMail) => Promise<void>;
  close(): Promise<void>;
}

export async function startSmtp(): Promise<SmtpSink> {
  const sink: SmtpSink = { url: '', mails: [], attempts: 0, reject: () => null, beforeAccept: async () => {}, close: async () => {} };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      const n = ++sink.attempts;
      const refusal = sink.reject(n);
      simpleParser(stream)
        .then(async (mail) => {
          if (refusal) return callback(Object.assign(new Error(refusal.message), { responseCode: refusal.code }));
          await sink.beforeAccept(n, mail);
          sink.mails.push(mail);
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  sink.url = `smtp://127.0.0.1:${port}`;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}
