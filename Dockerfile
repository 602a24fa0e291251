# syntax=docker/dockerfile:1

# --- build: one static binary ------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# nomsgpack leaves out gin's MessagePack codec: never used, ~6 MB of binary.
# .git stays out of the context: `claude-route version` gets the commit from
# docker build --build-arg REVISION=$(git rev-parse HEAD).
ARG REVISION=""
RUN CGO_ENABLED=0 go build -tags nomsgpack -trimpath -ldflags="-s -w -X main.revision=${REVISION}" -o /out/claude-route ./cmd/claude-route \
 && mkdir -p /out/account /out/product /out/data

# --- run: a small base and a user without privileges -------------------------
# (alpine's base already carries the CA bundle the upstream TLS calls need.)
FROM alpine:3.22
RUN addgroup -S -g 10001 app && adduser -S -D -H -u 10001 -G app app
WORKDIR /app
COPY --from=build /out/claude-route /app/claude-route
# The server writes refreshed tokens back into account files and issued keys
# into the product ledger, so both belong to the user it runs as; a new named
# volume takes this ownership from the image.
COPY --from=build --chown=10001:10001 /out/account /app/account
COPY --from=build --chown=10001:10001 /out/product /app/product
# The embedded store's file (STORE_FILE, ./data/store.snapshot) when REDIS_URL is empty.
COPY --from=build --chown=10001:10001 /out/data /app/data
VOLUME ["/app/account", "/app/product", "/app/data"]
ENV LISTEN_ADDR=:8080 ACCOUNT_DIR=/app/account PRODUCT_DIR=/app/product
EXPOSE 8080
USER 10001:10001
# The binary itself GETs /health on LISTEN_ADDR: no curl or wget needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/app/claude-route", "healthcheck"]
ENTRYPOINT ["/app/claude-route"]
CMD ["serve"]
