# syntax=docker/dockerfile:1
# Build: compile TypeScript once, then a slim runtime image with production deps only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# vendor/ holds a patched dependency (file:vendor/postgres, see vendor/README.md): npm ci needs it.
COPY package.json package-lock.json ./
COPY vendor ./vendor
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY vendor ./vendor
RUN npm ci --omit=dev

FROM node:20-bookworm-slim
# Debian's Chromium renders HTML documents to PDF and thumbnails (CHROMIUM_PATH below);
# fonts so that pages render with real glyphs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-liberation ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    CHROMIUM_PATH=/usr/bin/chromium
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# node_modules/postgres links to vendor/postgres.
COPY --from=deps /app/vendor ./vendor
COPY --from=build /app/dist ./dist
COPY drizzle ./dist/drizzle
COPY package.json ./
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000
# tini forwards SIGTERM so that the service drains requests and jobs before exiting.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
