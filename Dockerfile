# syntax=docker/dockerfile:1

# --- build: one static binary ------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/claude-route ./cmd/claude-route \
 && mkdir -p /out/account /out/product

# --- run: no shell, no package manager, not root -----------------------------
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/claude-route /app/claude-route
# The server writes refreshed tokens back into account files and issued keys
# into the product ledger, so both belong to the user it runs as (nonroot,
# 65532); a new named volume takes this ownership from the image.
COPY --from=build --chown=65532:65532 /out/account /app/account
COPY --from=build --chown=65532:65532 /out/product /app/product
VOLUME ["/app/account", "/app/product"]
ENV LISTEN_ADDR=:8080 ACCOUNT_DIR=/app/account PRODUCT_DIR=/app/product
EXPOSE 8080
USER 65532:65532
# distroless has no curl or wget: the binary itself GETs /health on LISTEN_ADDR.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/app/claude-route", "healthcheck"]
ENTRYPOINT ["/app/claude-route"]
CMD ["serve"]
