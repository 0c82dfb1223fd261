# reclaim's container image: a static binary on distroless, running as nonroot.
# Build it with "make image", which passes the version from git; the build command below must stay
# the one of the Makefile's build target (cmd/reclaim/image_test.go checks it).

FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/reclaim ./cmd/reclaim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reclaim /reclaim
USER nonroot:nonroot
ENTRYPOINT ["/reclaim"]
