/**
 * The custom resources render-k8s emits, against their published schemas: KEDA's ScaledObject
 * (@kubernetes-models/keda, generated from KEDA's CRD) and the Prometheus Operator's
 * ServiceMonitor, PodMonitor and PrometheusRule (@kubernetes-models/prometheus-operator).
 *
 * Two checks, because one is not enough: `.validate()` checks types, required fields and enums
 * but allows unknown properties, which the API server would silently prune (a misspelt
 * `scrapeTimout` would apply cleanly and do nothing). So each object is also type-checked by the
 * TypeScript compiler as an object literal of the package's interface (IScaledObject, …), where
 * every property the CRD does not define is an excess-property error, at any depth.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { loadK8sConfig } from '../../src/k8s/config.js';
import { loadRenderInputs, type Manifest, renderManifests } from '../../src/k8s/render.js';
import { K8S_BASE_ENV } from '../helpers/k8s-render.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENV = {
  ...K8S_BASE_ENV,
  K8S_AUTOSCALER: 'keda',
  K8S_PROMETHEUS_OPERATOR: 'true',
  K8S_PROMETHEUS_RULE: 'true',
};

const config = loadK8sConfig(ENV);
const objects = renderManifests(config, await loadRenderInputs(config));

/** Per custom kind: the model class (validate) and the interface (module, name) to type-check against. */
const CRDS: Record<
  string,
  { model: new (data: never) => { validate(): void }; module: string; type: string }
> = {
  'keda.sh/v1alpha1/ScaledObject': {
    model: ScaledObject,
    module: '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject',
    type: 'IScaledObject',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    model: ServiceMonitor,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
    type: 'IServiceMonitor',
  },
  'monitoring.coreos.com/v1/PodMonitor': {
    model: PodMonitor,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor',
    type: 'IPodMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    model: PrometheusRule,
    module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
    type: 'IPrometheusRule',
  },
};

const key = (o: Manifest) => `${o.apiVersion}/${o.kind}`;
const custom = objects.filter((o) => CRDS[key(o)] !== undefined);

/**
 * Type-checks each object as `const x: I<Kind> = <object literal>` in a virtual file beside the
 * tests (so the packages resolve as they do for the tests) and returns the compiler's errors,
 * each prefixed with the object it is in.
 */
function typeCheck(manifests: readonly Manifest[]): string[] {
  const file = join(ROOT, 'test/unit/__render-k8s-crd-literals__.ts');
  const imports = new Set<string>();
  const declarations: { name: string; start: number }[] = [];
  let body = '';
  manifests.forEach((m, i) => {
    const crd = CRDS[key(m)];
    if (!crd) throw new Error(`no interface for ${key(m)}`);
    imports.add(`import type { ${crd.type} } from '${crd.module}';\n`);
    declarations.push({ name: `${m.kind}/${m.metadata?.name}`, start: body.length });
    body += `export const object${i}: ${crd.type} = ${JSON.stringify(m, null, 2)};\n`;
  });
  const header = [...imports].join('');
  const text = header + body;
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    // The ES library alone: the default for the target adds the DOM's (slow, and not needed).
    lib: ['lib.es2022.d.ts'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, text, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  const source = program.getSourceFile(file)!;
  return ts.getPreEmitDiagnostics(program, source).map((d) => {
    const at = (d.start ?? 0) - header.length;
    const owner = [...declarations].reverse().find((decl) => decl.start <= at)?.name ?? '(imports)';
    return `${owner}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

describe('render-k8s: custom resources against their published schemas', () => {
  it('emits every custom kind it knows with these options', () => {
    expect(custom.map(key).sort()).toEqual(Object.keys(CRDS).sort());
  });

  it.each(custom.map((o) => [`${o.kind}/${o.metadata?.name}`, o] as const))(
    '%s validates against its CRD schema',
    (_, object) => {
      const Model = CRDS[key(object)]!.model;
      expect(() => new Model(structuredClone(object) as never).validate()).not.toThrow();
    },
  );

  it('every field is one the CRD defines (no excess property at any depth)', () => {
    expect(typeCheck(custom)).toEqual([]);
  }, 60_000);

  it('the checks can fail: a wrong type fails validate(), and a misspelt field fails the type check (validate() lets it through)', () => {
    const scaledObject = structuredClone(custom.find((o) => o.kind === 'ScaledObject')!) as Manifest & {
      spec: Record<string, unknown> & { scaleTargetRef: Record<string, unknown> };
    };
    const wrongType = structuredClone(scaledObject);
    wrongType.spec.minReplicaCount = 'two';
    expect(() => new ScaledObject(wrongType as never).validate()).toThrow();

    const misspelt = structuredClone(scaledObject);
    misspelt.spec.scaleTargetRef.envSourceContainerNam = 'worker';
    expect(() => new ScaledObject(structuredClone(misspelt) as never).validate()).not.toThrow();
    const monitor = structuredClone(custom.find((o) => o.kind === 'ServiceMonitor')!) as Manifest & {
      spec: { endpoints: Record<string, unknown>[] };
    };
    monitor.spec.endpoints[0]!.scrapeTimout = '10s';
    expect(() => new ServiceMonitor(structuredClone(monitor) as never).validate()).not.toThrow();

    const errors = typeCheck([misspelt, monitor]);
    expect(errors).toEqual([
      expect.stringMatching(
        /^ScaledObject\/orders-worker: .*'"envSourceContainerNam"' does not exist in type 'IScaleTarget'/,
      ),
      expect.stringMatching(
        /^ServiceMonitor\/orders-api: .*'"scrapeTimout"' does not exist in type 'IEndpoint'/,
      ),
    ]);
  }, 60_000);

  it('KEDA trigger metadata names only parameters the scalers document (a map of strings the CRD cannot check)', () => {
    // keda.sh/docs/scalers/postgresql and /cpu: every parameter the scalers read.
    const documented: Record<string, string[]> = {
      postgresql: [
        'connectionFromEnv',
        'connection',
        'host',
        'port',
        'userName',
        'passwordFromEnv',
        'dbName',
        'sslmode',
        'query',
        'targetQueryValue',
        'activationTargetQueryValue',
      ],
      cpu: ['value', 'containerName'],
    };
    const so = custom.find((o) => o.kind === 'ScaledObject') as unknown as {
      spec: { triggers: { type: string; metadata: Record<string, unknown> }[] };
    };
    for (const trigger of so.spec.triggers) {
      expect(Object.keys(documented)).toContain(trigger.type);
      for (const [name, value] of Object.entries(trigger.metadata)) {
        expect(documented[trigger.type], `${trigger.type}.${name}`).toContain(name);
        expect(typeof value, `${trigger.type}.${name}`).toBe('string');
      }
    }
  });
});
