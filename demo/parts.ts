import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'svix';

/**
 * The three outside parties of the demo, each a real server on 127.0.0.1: the bill
 * provider's website, a customer's webhook receiver (verifying with svix's own library, as
 * a customer would) and a mail server. Each prints what it sees through `say`.
 */
export type Say = (who: string, line: string) => void;

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};
const closing = (server: Server) => () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));

/** A one-page bill, drawn with pdf-lib at startup. */
async function samplePdf(): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const font = await doc.embedFont(StandardFonts.Helvetica);
  const page = doc.addPage([595, 842]);
  const lines = ['Acme Energie', '', 'Facture 023315 — 1 November 2026', 'Contrat EZ4225 — Mr John Doe', '', 'Electricity, October 2026      35.42 EUR', 'VAT                                   7.08 EUR', 'Total                               42.50 EUR', '', 'Due by 15 November 2026.'];
  lines.forEach((l, i) => page.drawText(l, { x: 60, y: 770 - i * 24, size: i === 0 ? 22 : 13, font }));
  return Buffer.from(await doc.save());
}

const contractPage = `<!doctype html><html><head><meta charset="utf-8"><title>Conditions particulières</title></head>
<body><h1>Acme Energie — Conditions particulières</h1><p>Contrat EZ4225, Mr John Doe, from 14 February 2025.</p>
<p>Fixed price for 24 months; renewal by tacit agreement.</p></body></html>`;

/** The provider's website: the bill (PDF) and the contract (an HTML page) the syncs point to. */
export async function startProviderSite(say: Say) {
  const files: Record<string, { type: string; body: Buffer }> = {
    '/bills/023315.pdf': { type: 'application/pdf', body: await samplePdf() },
    '/contracts/EZ4225.html': { type: 'text/html; charset=utf-8', body: Buffer.from(contractPage) },
  };
  const server = createServer((req, res) => {
    const file = files[req.url ?? ''];
    say('provider', `GET ${req.url} → ${file ? `200 ${file.type.split(';')[0]}, ${file.body.length} bytes` : '404'}`);
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.body.length) }).end(file.body);
  });
  const origin = `http://127.0.0.1:${await listen(server)}`;
  return { origin, close: closing(server) };
}

export interface Delivery {
  type: string;
  verified: boolean;
  data: any;
}

/** A customer's webhook receiver: checks each request with `new Webhook(secret).verify`, prints it. */
export async function startReceiver(say: Say) {
  const state = { secret: '', deliveries: [] as Delivery[] };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let verified = false;
      let msg: { type: string; data: any } = { type: '?', data: {} };
      try {
        msg = new Webhook(state.secret).verify(body, req.headers as Record<string, string>) as typeof msg;
        verified = true;
      } catch {
        msg = JSON.parse(body);
      }
      state.deliveries.push({ type: msg.type, verified, data: msg.data });
      say('receiver', `${verified ? 'signature verified' : 'SIGNATURE REFUSED'} ${req.headers['webhook-id']} ${msg.type}: ${describe(msg.type, msg.data)}`);
      res.writeHead(verified ? 200 : 401).end();
    });
  });
  const url = `http://127.0.0.1:${await listen(server)}/docrelay`;
  return { url, state, close: closing(server) };
}

function describe(type: string, data: any): string {
  if (type.startsWith('document.')) {
    const d = data.document;
    return `document ${d.id} "${d.name}" (${d.type}) ${d.total_amount ?? ''} ${d.currency ?? ''}, file ${d.file.status}${d.url ? `: ${d.url}` : ''}`;
  }
  if (type.startsWith('subscription.')) return `subscription ${data.subscription.id} "${data.subscription.label}"`;
  if (type.startsWith('connection.')) return `connection ${data.connection.id}, ${data.attempts} attempts`;
  return JSON.stringify(data);
}

/** A mail server that accepts everything and prints each mail (smtp-server, mailparser). */
export async function startMailCatcher(say: Say) {
  const mails: { to: string; subject: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then((m) => {
          const to = Array.isArray(m.to) ? m.to.map((a) => a.text).join(', ') : (m.to?.text ?? '');
          mails.push({ to, subject: m.subject ?? '' });
          const files = m.attachments.map((a) => `${a.filename} (${a.contentType}, ${a.size} bytes)`).join(', ') || 'no attachment';
          say('mail', `to ${to}: "${m.subject}" — ${files}`);
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  return { url, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
