/**
 * The manifest templates in templates/k8s/: plain YAML whose placeholders are filled after
 * parsing, never by text substitution, so a value can never change the document's structure.
 * A string that is exactly `${name}` becomes the value itself (a number, a list, a map);
 * `${name}` inside a longer string is interpolated (the value must then be a string or number).
 * A map value that is exactly `${name?}` is optional: the key is left out when the value is
 * undefined (e.g. priorityClassName without K8S_PRIORITY_CLASS).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/** templates/k8s/ beside src/ (tsx, vitest) and beside dist/ (the built CLI, the image's /app). */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/k8s/', import.meta.url));

export type TemplateVars = Readonly<Record<string, unknown>>;

const WHOLE = /^\$\{(\w+)\}$/;
const OPTIONAL = /^\$\{(\w+)\?\}$/;
/** What an optional placeholder without a value fills in: its key is then dropped. */
const ABSENT = Symbol('absent');
const INNER = /\$\{(\w+)\}/g;

/** Parses one template file (no placeholders filled). */
export function readTemplate(file: string, dir = TEMPLATES_DIR): unknown {
  return parse(readFileSync(`${dir}${file}`, 'utf8'));
}

/**
 * Loads `file` and fills its placeholders from `vars`. The caller names the resulting type: the
 * tests validate every rendered object against the Kubernetes OpenAPI schema.
 */
export function renderTemplate<T>(file: string, vars: TemplateVars, dir = TEMPLATES_DIR): T {
  return fill(readTemplate(file, dir), vars, file) as T;
}

function lookup(name: string, vars: TemplateVars, file: string): unknown {
  if (!Object.hasOwn(vars, name) || vars[name] === undefined) {
    throw new Error(`template ${file}: no value for \${${name}}`);
  }
  return vars[name];
}

export function fill(node: unknown, vars: TemplateVars, file: string): unknown {
  if (typeof node === 'string') {
    const optional = OPTIONAL.exec(node);
    if (optional) {
      const value = vars[optional[1]!];
      return value === undefined ? ABSENT : structuredClone(value);
    }
    const whole = WHOLE.exec(node);
    if (whole) return structuredClone(lookup(whole[1]!, vars, file));
    return node.replace(INNER, (_, name: string) => {
      const value = lookup(name, vars, file);
      if (typeof value !== 'string' && typeof value !== 'number') {
        throw new Error(`template ${file}: \${${name}} inside a string must be a string or a number`);
      }
      return String(value);
    });
  }
  if (Array.isArray(node)) {
    return node.map((item) => {
      const value = fill(item, vars, file);
      if (value === ABSENT) throw new Error(`template ${file}: an optional \${name?} must be a map value`);
      return value;
    });
  }
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node)
        .map(([key, value]) => [key, fill(value, vars, file)] as const)
        .filter(([, value]) => value !== ABSENT),
    );
  }
  return node;
}
