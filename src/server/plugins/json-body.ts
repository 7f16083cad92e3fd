/**
 * Request bodies are JSON only, strictly UTF-8, with prototype-poisoning keys rejected (fastify's
 * secure parser). Without a text/plain parser, any other content type is refused with 415.
 */
import { isUtf8 } from 'node:buffer';
import fp from 'fastify-plugin';
import { AppError } from '../../platform/errors.js';

export const jsonBody = fp(
  async (app) => {
    const defaultJson = app.getDefaultJsonParser('error', 'error');
    app.removeContentTypeParser(['application/json', 'text/plain']);
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const buffer = body as Buffer;
      if (!isUtf8(buffer)) {
        done(
          new AppError('validation_failed', 'The request body is not valid UTF-8.', {
            errors: [{ path: '', message: 'body must be UTF-8 encoded JSON' }],
          }),
          undefined,
        );
        return;
      }
      defaultJson(request, buffer.toString('utf8'), done);
    });
  },
  { name: 'json-body' },
);
