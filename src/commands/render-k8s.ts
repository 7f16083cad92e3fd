/**
 * `orders render-k8s [--image IMG] [--namespace NS] [--out DIR]`: Kubernetes manifests for the
 * configuration in the environment, as multi-document YAML on stdout or one file per object.
 */
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config.js';
import { loadK8sConfig } from '../k8s/config.js';
import { GENERATED_MARKER, renderManifests, toFiles, toYaml } from '../k8s/render.js';
import { UsageError } from './report.js';

export async function run(options: { image?: string; namespace?: string; out?: string }): Promise<number> {
  let config: ReturnType<typeof loadK8sConfig>;
  try {
    config = loadK8sConfig(undefined, { image: options.image, namespace: options.namespace });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  const manifests = renderManifests(config);
  if (options.out === undefined) {
    process.stdout.write(toYaml(manifests));
    return 0;
  }
  if (options.out.trim() === '') throw new UsageError('--out expects a directory path');
  const files = toFiles(manifests);
  await writeDirectory(options.out, files);
  process.stderr.write(`orders render-k8s: wrote ${files.length} manifests to ${options.out}\n`);
  return 0;
}

/**
 * Writes the files, after removing this command's own earlier output from `dir` (a file whose
 * first line is the generated marker): a Job renamed by a new image must not linger beside the
 * new one. Other files in `dir` are left alone.
 */
async function writeDirectory(dir: string, files: { name: string; content: string }[]): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory())
    throw new UsageError(`--out expects a directory (${dir} is a file)`);
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) {
    if (!/^\d+-[a-z0-9]+-[a-z0-9.-]+\.yaml$/.test(name)) continue;
    const head = (await readFile(join(dir, name), 'utf8')).slice(0, GENERATED_MARKER.length);
    if (head === GENERATED_MARKER) await rm(join(dir, name));
  }
  for (const file of files) await writeFile(join(dir, file.name), file.content);
}
