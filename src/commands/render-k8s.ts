/**
 * `orders render-k8s [--image IMG] [--namespace NS] [--out DIR]`: Kubernetes manifests for the
 * configuration in the environment, as multi-document YAML on stdout, or one file per object and
 * a kustomization.yaml listing them. A configuration that cannot work (bad values, or more
 * database connections at full scale-out than K8S_DB_MAX_CONNECTIONS) exits 2.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import { loadK8sConfig } from '../k8s/config.js';
import {
  GENERATED_MARKER,
  KUSTOMIZATION_FILE,
  loadRenderInputs,
  renderManifests,
  toFiles,
  toYaml,
} from '../k8s/render.js';
import { UsageError } from './report.js';

export async function run(options: { image?: string; namespace?: string; out?: string }): Promise<number> {
  let config: ReturnType<typeof loadK8sConfig>;
  try {
    config = loadK8sConfig(undefined, { image: options.image, namespace: options.namespace });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const manifests = renderManifests(config, await loadRenderInputs(config));
  if (options.out === undefined) {
    process.stdout.write(toYaml(manifests));
    return 0;
  }
  if (options.out.trim() === '') throw new UsageError('--out expects a directory path');
  const files = toFiles(manifests);
  await writeDirectory(options.out, files);
  process.stderr.write(
    `orders render-k8s: wrote ${manifests.length} manifests and ${KUSTOMIZATION_FILE} to ${options.out}\n`,
  );
  return 0;
}

/**
 * Writes the files, after removing this command's own earlier output from `dir` (a file whose
 * first line is the generated marker): a Job renamed by a new image must not linger beside the
 * new one. Other files in `dir` are left alone; a kustomization.yaml this command did not write
 * is refused (it would be overwritten): overlays belong in their own directory, using this one
 * as a resource.
 */
async function writeDirectory(dir: string, files: { name: string; content: string }[]): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory())
    throw new UsageError(`--out expects a directory (${dir} is a file)`);
  await mkdir(dir, { recursive: true });
  const generated = async (name: string) =>
    (await readFile(join(dir, name), 'utf8')).slice(0, GENERATED_MARKER.length) === GENERATED_MARKER;
  const names = await readdir(dir);
  if (names.includes(KUSTOMIZATION_FILE) && !(await generated(KUSTOMIZATION_FILE))) {
    throw new UsageError(
      `--out ${dir} holds a ${KUSTOMIZATION_FILE} that render-k8s did not write; move it to an overlay ` +
        `directory that lists ${dir} under resources, then render again`,
    );
  }
  for (const name of names) {
    if (!/^\d+-[a-z0-9]+-[a-z0-9.-]+\.yaml$/.test(name) && name !== KUSTOMIZATION_FILE) continue;
    if (await generated(name)) await rm(join(dir, name));
  }
  for (const file of files) await writeFile(join(dir, file.name), file.content);
}
