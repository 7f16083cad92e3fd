/** render-k8s in tests: the smallest environment that renders, every option on, and a render. */
import { loadK8sConfig } from '../../src/k8s/config.js';
import { loadRenderInputs, type Manifest, renderManifests } from '../../src/k8s/render.js';

export const K8S_TEST_IMAGE = 'registry.example.com/shop/orders:1.4.2';

/** The smallest configuration that renders (the pods default to AUTH_MODE=jwt): the rest at defaults. */
export const K8S_BASE_ENV = {
  K8S_IMAGE: K8S_TEST_IMAGE,
  AUTH_ISSUER: 'https://idp.example.com/',
  AUTH_AUDIENCE: 'orders',
};

/** Every optional object on. */
export const K8S_ALL_OPTIONS_ENV = {
  ...K8S_BASE_ENV,
  K8S_AUTOSCALER: 'keda',
  K8S_PROMETHEUS_OPERATOR: 'true',
  K8S_PROMETHEUS_RULE: 'true',
  K8S_GRAFANA_DASHBOARD: 'true',
  K8S_PRIORITY_CLASS: 'orders-critical',
};

/** What `orders render-k8s` renders for `env` and `flags` (the dashboard loaded when asked for). */
export async function renderK8s(
  env: Record<string, string | undefined>,
  flags: { image?: string; namespace?: string } = {},
): Promise<Manifest[]> {
  const config = loadK8sConfig(env, flags);
  return renderManifests(config, await loadRenderInputs(config));
}
