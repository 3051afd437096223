arg GO_VERSION=1.23
arg HELPER=alpine/helm:3.16.3

from golang:${GO_VERSION:-1.22}-alpine as BUILD
arg TARGETARCH
workdir /src
copy go.mod go.sum ./
run --mount=type=cache,target=/go/pkg/mod go mod download
copy . .
run <<EOF
set -e
# The heredoc body is a script, not Dockerfile instructions:
cat > /tmp/Dockerfile.example <<INNER
FROM example.invalid/not-an-image:1
INNER
go build -o /out/api ./cmd/api
EOF

from docker.io/library/golang:${GO_VERSION}-alpine AS tools
arg HELPER
copy --from=${HELPER} /usr/bin/helm /usr/bin/helm
run --mount=target=/src,from=build \
    --mount=type=bind,target=/git,from=alpine/git:2.47.1 true

from gcr.io/distroless/static-debian12:nonroot-${TARGETARCH}
copy --from=build /out/api /api
copy --from=tools:${GO_VERSION} /usr/bin/helm /helm
entrypoint ["/api"]
