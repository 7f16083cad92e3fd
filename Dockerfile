# syntax=docker/dockerfile:1
# The orders service image: one CLI (`orders serve | worker | migrate | healthcheck | ...`).
#
#   docker build -t orders:1.0.0 .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 -e DATABASE_URL=... orders:1.0.0 serve
#
# Signals: node itself is PID 1 (no tini, no shell wrapper). The service installs its own SIGTERM
# and SIGINT handlers (readiness 503 -> SHUTDOWN_DELAY_MS -> drain -> exit 0), which is all PID 1
# needs: the kernel only withholds signals from PID 1 that have no handler. The service starts no
# child processes, so there are no zombies to reap. `docker run --init` stays possible.
#
# Base image: every stage is FROM ${NODE_IMAGE}, so pinning it by digest is this one line (or
# `--build-arg NODE_IMAGE=node:24-bookworm-slim@sha256:<digest>`); docs/deploy.md says how to get
# the digest and keep it current. The repo does not pin one: no registry is reachable where it is built.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript with the dev dependencies --------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are copied (kept out of this layer
# so that a source change does not re-download dependencies).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- production dependencies only, without install scripts, and their SBOM --------------------
FROM ${NODE_IMAGE} AS deps
# `npm sbom` names the application component after this directory.
WORKDIR /orders
COPY package.json package-lock.json ./
# /app/sbom.cdx.json: a CycloneDX SBOM of exactly the packages installed here (and shipped), made
# by npm itself, offline (it reads node_modules and the lockfile). devDependencies are deleted from
# this stage's copy of package.json first: on a tree without them `npm sbom --omit=dev` fails
# (ESBOMPROBLEMS, "missing"), and with --package-lock-only it drops production packages a dev
# dependency also depends on (npm/cli#7909; here e.g. jose, yaml and pg-protocol).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm pkg delete devDependencies \
  && npm sbom --omit=dev --sbom-format cyclonedx --sbom-type application >sbom.cdx.json \
  && npm cache clean --force

# ---- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# A fixed, high UID/GID (>= 10000) that cannot collide with a host user; numeric in USER so that
# Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 orders \
  && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
     --shell /usr/sbin/nologin orders
ENV NODE_ENV=production \
    ORDERS_DATA_DIR=/tmp/orders \
    PORT=8080
WORKDIR /app
# Everything under /app stays root-owned and read-only for the service user.
COPY --from=deps /orders/node_modules ./node_modules
COPY --from=deps /orders/sbom.cdx.json ./sbom.cdx.json
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY migrations ./migrations
COPY templates ./templates
USER 10001:10001
EXPOSE 8080 8081
# `orders healthcheck` probes http://127.0.0.1:$PORT/readyz; it loads no server code, so it is cheap.
# (`orders worker` serves on WORKER_PORT: its container overrides this with --url.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/bin/orders.js", "healthcheck"]
STOPSIGNAL SIGTERM
# A young generation of 2 × 32 MiB (Node's default is 2 × 16): a request's garbage dies young, and
# half as many scavenges cost a GET ~7% less CPU for ~30 MiB more RSS under load (DESIGN.md,
# "The limit"). The bench runs ours, and its bare baseline, with these flags (bench/lib/node-flags.ts).
ENTRYPOINT ["node", "--max-semi-space-size=32", "/app/bin/orders.js"]
CMD ["serve"]
