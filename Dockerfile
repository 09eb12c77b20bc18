# syntax=docker/dockerfile:1
# WhatIsUp gateway, production image.
#
# Node 22 runs the TypeScript sources directly (type stripping): there is no build step. The
# `node@22` npm package the repository pins for development is a devDependency and is left out by
# `npm ci --omit=dev`; the image's own Node 22 runs the gateway.
#
#   docker build -t whatisup .
#   docker run -e DATABASE_URL=... -e WHATISUP_MIGRATION_DATABASE_URL=... -e WHATISUP_MASTER_KEYS=... \
#     -e WHATISUP_ADMIN_TOKEN=... -p 8080:8080 whatisup
# (DATABASE_URL: the role the gateway serves as; WHATISUP_MIGRATION_DATABASE_URL: the tables' owner.)
ARG NODE_IMAGE=node:22-bookworm-slim

# Only the package manifests, so the dependency layer below is rebuilt only when one of them changes
# (whatever workspaces exist under packages/).
FROM ${NODE_IMAGE} AS manifests
WORKDIR /app
COPY packages/ packages/
RUN find packages -mindepth 2 -maxdepth 2 ! -name package.json -exec rm -rf {} +

FROM ${NODE_IMAGE}
WORKDIR /app

COPY package.json package-lock.json ./
COPY --from=manifests /app/packages/ packages/
# patches to installed packages (Baileys), applied by the install's postinstall (patch-package)
COPY patches/ patches/
RUN npm ci --omit=dev --no-audit --no-fund \
  && npm cache clean --force

COPY packages/ packages/

# The data directory (embedded PostgreSQL, generated development secrets) must be writable by the
# runtime user; a named volume mounted here inherits this ownership.
RUN mkdir -p /app/.data && chown node:node /app/.data

ENV NODE_ENV=production \
    WHATISUP_ENV=production \
    WHATISUP_DATA_DIR=/app/.data \
    PORT=8080

# 8080: public REST API (+ /healthz, /readyz). 8081: operator listener (admin RPC, /metrics); set
# WHATISUP_ADMIN_LISTEN=0.0.0.0:8081 to reach it from outside the container, and never publish it
# beyond a trusted network.
EXPOSE 8080 8081
VOLUME ["/app/.data"]

USER node

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

CMD ["node", "packages/server/src/main.ts"]
