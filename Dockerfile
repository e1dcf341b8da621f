# syntax=docker/dockerfile:1
# The clustermesh image: one CLI, every daemon (`clustermesh apiserver|agent|operator|
# kvstoremesh`). Three stages so that the runtime holds neither the TypeScript sources nor
# the dev dependencies, and runs as an unprivileged user.

# ---- build: transpile src/ and bundle web/ into dist/ (scripts/build.mjs) ----
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# `prepare` would build before the sources are copied; the build runs explicitly below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY src ./src
COPY web ./web
RUN node scripts/build.mjs --verbose

# ---- deps: production node_modules only ----
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# dist/cli/program.js reads ../../package.json for `--version`.
COPY --chown=root:root package.json ./package.json
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# The files belong to root and are not writable by the process: the user below only runs them.
# 65532 is the conventional "nonroot" UID of distroless images.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["--help"]
