import { EventEmitter } from 'node:events';
import pg from 'pg';
import { expect, it } from 'vitest';
import { isReleasedPoolClientError } from '../src/db/driver-crash.js';

// The uncaught exception a released graphile-worker pool's client throws (an 'error' emitted
// with the pg client and no listener left) is told apart from any other: only it is survived.
it('recognises the error of a pg client emitted with no listener, and nothing else', () => {
  const thrown = (value: unknown) => {
    try {
      new EventEmitter().emit('error', value);
    } catch (e) {
      return e;
    }
    throw new Error('emit did not throw');
  };
  const client = new pg.Client({ connectionString: 'postgres://127.0.0.1:1/none' });
  expect(isReleasedPoolClientError(thrown(client))).toBe(true);
  expect(isReleasedPoolClientError(thrown(new Error('connection terminated')))).toBe(false);
  expect(isReleasedPoolClientError(thrown({ processID: 1 }))).toBe(false);
  expect(isReleasedPoolClientError(new TypeError('x'))).toBe(false);
});
