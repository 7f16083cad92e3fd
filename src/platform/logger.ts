import pino, { type Logger } from 'pino';
import { LOG_REDACT_PATHS, redactText } from './redact.js';

export type { Logger };

/** JSON logs on stdout (or a given stream), credentials redacted by path and inside messages. */
export function createLogger(
  level: string,
  options: { destination?: pino.DestinationStream; name?: string } = {},
): Logger {
  return pino(
    {
      level,
      name: options.name,
      base: { service: 'orders' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      serializers: {
        err: (err: Error) => {
          const s = pino.stdSerializers.err(err);
          s.message = redactText(s.message);
          if (s.stack) s.stack = redactText(s.stack);
          return s;
        },
      },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) {
            if (typeof args[i] === 'string') args[i] = redactText(args[i] as string);
          }
          method.apply(this, args as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
