# fraudwatch: one static binary on a distroless, non-root base.
#
#   docker build -t fraudwatch .
#   docker run --rm fraudwatch --help
#   docker run --rm -v fw-data:/data fraudwatch process --brokers kafka:9092 --data-dir /data --http 0.0.0.0:8080
#
# docker-compose.yml beside this file runs a whole stack (Kafka 4.x, topics, processors).

# ---- build ------------------------------------------------------------------
# The build runs on the builder's own platform and cross-compiles (no cgo), so
# `docker buildx build --platform linux/arm64,linux/amd64 .` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src

# Dependencies first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# A static binary (no cgo), without local paths or debug information.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/fraudwatch ./cmd/fraudwatch
# /data must exist in the image, owned by the runtime user: a fresh volume
# mounted there (named or anonymous) copies that ownership and is writable.
RUN mkdir -p /out/data

# ---- run --------------------------------------------------------------------
# distroless/static: CA certificates, tzdata and /etc/passwd with the nonroot
# user (65532), no shell. Health is probed from outside, over HTTP (/healthz,
# /readyz), when the command passes --http.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fraudwatch /fraudwatch
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# LevelDB state of `process` (--data-dir /data): one database per owned partition,
# rebuilt from the compacted changelog topic when the volume is new or lost.
VOLUME /data
# --http (e.g. 0.0.0.0:8080): /healthz, /readyz, /metrics
EXPOSE 8080
ENTRYPOINT ["/fraudwatch"]
CMD ["--help"]
