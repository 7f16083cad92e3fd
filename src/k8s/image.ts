/**
 * Container image references, as render-k8s accepts them: only a reference that pins one build
 * (a version tag or a digest) goes into a manifest.
 */

// The grammar of github.com/distribution/reference, which container runtimes use.
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const REFERENCE = new RegExp(
  `^(?<name>(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)` +
    `(?::(?<tag>[\\w][\\w.-]{0,127}))?(?:@(?<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-zA-Z]+))?$`,
);
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
export const IMAGE_EXAMPLES =
  'expected an image with a version tag or a digest, e.g. registry.example.com/orders:1.4.2 or registry.example.com/orders@sha256:<64 hex digits>';

export type ImageReference =
  | { ok: true; name: string; tag: string | undefined; digest: string | undefined }
  | { ok: false; problem: string };

/**
 * Parses an image reference and refuses what would not pin one build: no tag (Kubernetes would
 * pull `:latest`), `:latest` itself, or a malformed digest. `host:5000/orders` has a registry port,
 * not a tag.
 */
export function parseImageReference(value: string): ImageReference {
  const match = REFERENCE.exec(value);
  if (!match?.groups || value.length > 512) {
    return { ok: false, problem: `is not a valid image reference; ${IMAGE_EXAMPLES}` };
  }
  const { name = '', tag, digest } = match.groups;
  if (name.length > 255) return { ok: false, problem: 'has a repository name over 255 characters' };
  if (digest !== undefined && !SHA256_DIGEST.test(digest)) {
    return { ok: false, problem: 'has a digest that is not sha256:<64 lowercase hex digits>' };
  }
  if (tag !== undefined && tag.toLowerCase() === 'latest') {
    return { ok: false, problem: `uses the mutable tag "latest"; ${IMAGE_EXAMPLES}` };
  }
  if (tag === undefined && digest === undefined) {
    return { ok: false, problem: `has no tag, so Kubernetes would pull "latest"; ${IMAGE_EXAMPLES}` };
  }
  return { ok: true, name, tag, digest };
}

/** A label value (<= 63 characters, alphanumeric at both ends) naming the image's version. */
export function imageVersionLabel(ref: { tag: string | undefined; digest: string | undefined }): string {
  const raw = ref.tag ?? `sha256-${(ref.digest ?? '').slice('sha256:'.length, 'sha256:'.length + 12)}`;
  return raw
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}
