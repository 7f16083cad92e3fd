/**
 * Just enough PromQL lexing to say which metrics and labels an expression names, for the tests
 * that check the dashboard and the alerting rules against what the service really exports.
 *
 * A metric name is an identifier that is not a keyword, an aggregation operator or a function
 * (an identifier followed by `(`), not inside a label matcher `{…}` (whose label names and values
 * are collected separately), a string, a range or subquery `[…]`, a grouping list such as
 * `by (…)`, or a number or duration (`5m`, `1h30m`). `{__name__="x"}` names `x`.
 */

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  /** The metric name, or undefined for a bare `{…}` without `__name__`. */
  metric: string | undefined;
  matchers: Matcher[];
}

export interface PromqlRefs {
  selectors: Selector[];
  /** Labels named in by / without / on / ignoring / group_left / group_right lists. */
  groupingLabels: string[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan', 'start', 'end']);
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

const IDENTIFIER = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
// A number (decimal, hex, exponent) with an optional duration suffix: 5m, 1h30m, 250ms, 1.5.
const NUMBER =
  /^(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?/;
const MATCH_OP = /^(=~|!~|!=|=)/;

class Lexer {
  i = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.i >= this.text.length;
  }

  rest(): string {
    return this.text.slice(this.i);
  }

  skipSpace(): void {
    for (;;) {
      while (!this.done && /\s/.test(this.text[this.i]!)) this.i++;
      if (this.text[this.i] !== '#') return;
      while (!this.done && this.text[this.i] !== '\n') this.i++;
    }
  }

  peek(): string | undefined {
    this.skipSpace();
    return this.text[this.i];
  }

  take(pattern: RegExp): string | undefined {
    const match = pattern.exec(this.rest());
    if (!match) return undefined;
    this.i += match[0].length;
    return match[0];
  }

  expect(char: string): void {
    if (this.peek() !== char) throw new Error(`PromQL: expected "${char}" at ${this.i} in ${this.text}`);
    this.i++;
  }

  /** A quoted string ("…", '…' or `…`), returned unquoted. */
  string(): string {
    const quote = this.text[this.i]!;
    let value = '';
    this.i++;
    while (!this.done && this.text[this.i] !== quote) {
      if (this.text[this.i] === '\\' && quote !== '`') this.i++;
      value += this.text[this.i];
      this.i++;
    }
    if (this.done) throw new Error(`PromQL: unterminated string in ${this.text}`);
    this.i++;
    return value;
  }

  /** Skips a balanced `[…]` (a range, a subquery, a Grafana `$__rate_interval`). */
  skipBrackets(): void {
    const close = this.text.indexOf(']', this.i);
    if (close < 0) throw new Error(`PromQL: unterminated "[" in ${this.text}`);
    this.i = close + 1;
  }

  matchers(): Matcher[] {
    this.expect('{');
    const matchers: Matcher[] = [];
    while (this.peek() !== '}') {
      const label = this.take(LABEL_NAME);
      this.skipSpace();
      const op = this.take(MATCH_OP) as Matcher['op'] | undefined;
      const quote = this.peek();
      if (!label || !op || !quote || !`"'\``.includes(quote)) {
        throw new Error(`PromQL: bad label matcher at ${this.i} in ${this.text}`);
      }
      matchers.push({ label, op, value: this.string() });
      if (this.peek() === ',') this.i++;
    }
    this.i++;
    return matchers;
  }

  labelList(): string[] {
    this.expect('(');
    const labels: string[] = [];
    while (this.peek() !== ')') {
      const label = this.take(LABEL_NAME);
      if (!label) throw new Error(`PromQL: bad label list at ${this.i} in ${this.text}`);
      labels.push(label);
      if (this.peek() === ',') this.i++;
    }
    this.i++;
    return labels;
  }
}

/** The selectors and grouping labels of one PromQL expression. Throws on what it cannot lex. */
export function parsePromql(expr: string): PromqlRefs {
  const lexer = new Lexer(expr);
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  while (lexer.peek() !== undefined) {
    const char = lexer.text[lexer.i]!;
    if (char === '"' || char === "'" || char === '`') {
      lexer.string();
    } else if (char === '[') {
      lexer.skipBrackets();
    } else if (char === '{') {
      selectors.push(bareSelector(lexer.matchers()));
    } else if (/[0-9.]/.test(char) && lexer.take(NUMBER)) {
      // a number or a duration
    } else if (char === '$') {
      // a Grafana variable outside a string (e.g. `$__range` in a function argument)
      lexer.i++;
      lexer.take(IDENTIFIER);
    } else {
      const word = lexer.take(IDENTIFIER);
      if (!word) {
        lexer.i++; // an operator or punctuation
        continue;
      }
      const lower = word.toLowerCase();
      if (GROUPING.has(lower)) {
        if (lexer.peek() === '(') groupingLabels.push(...lexer.labelList());
      } else if (KEYWORDS.has(lower) || AGGREGATIONS.has(lower) || lexer.peek() === '(') {
        // a keyword, an aggregation operator or a function call
      } else {
        selectors.push({ metric: word, matchers: lexer.peek() === '{' ? lexer.matchers() : [] });
      }
    }
  }
  return { selectors, groupingLabels };
}

function bareSelector(matchers: Matcher[]): Selector {
  const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
  return { metric: name?.value, matchers: matchers.filter((m) => m !== name) };
}

/** The metric names an expression reads, sorted and unique. */
export function metricNames(expr: string): string[] {
  const names = parsePromql(expr)
    .selectors.map((s) => s.metric)
    .filter((m): m is string => m !== undefined);
  return [...new Set(names)].sort();
}

export interface Exposition {
  /** Every series name a scrape can return: a histogram `x` gives x_bucket, x_count and x_sum. */
  names: Set<string>;
  /** The label names seen on each series name's samples (`le` on buckets). */
  labels: Map<string, Set<string>>;
}

/**
 * Reads Prometheus text exposition: names from the `# TYPE name type` lines (so a labelled
 * metric with no sample yet still counts), labels from the samples.
 */
export function parseExposition(text: string): Exposition {
  const names = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      const suffixes =
        kind === 'histogram'
          ? ['_bucket', '_count', '_sum']
          : kind === 'summary'
            ? ['', '_count', '_sum']
            : [''];
      for (const suffix of suffixes) names.add(`${name}${suffix}`);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample || line.startsWith('#')) continue;
    const [, name, body = ''] = sample as unknown as [string, string, string | undefined];
    const seen = labels.get(name) ?? new Set<string>();
    for (const m of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) seen.add(m[1]!);
    labels.set(name, seen);
  }
  return { names, labels };
}

/** Merges the expositions of several processes (the API and the worker). */
export function mergeExpositions(...all: Exposition[]): Exposition {
  const merged: Exposition = { names: new Set(), labels: new Map() };
  for (const one of all) {
    for (const name of one.names) merged.names.add(name);
    for (const [name, set] of one.labels) {
      merged.labels.set(name, new Set([...(merged.labels.get(name) ?? []), ...set]));
    }
  }
  return merged;
}
