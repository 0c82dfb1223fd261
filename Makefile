# reclaim: build, test and demo targets. "make demo" and "make test" are the README's two commands.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEMO_OUT ?= demo-out
# The container engine and the image name of "make image".
ENGINE  ?= docker
IMAGE   ?= reclaim:$(VERSION)

.PHONY: build test demo bench image clean

# The reclaim binary is static (CGO_ENABLED=0), as in the Dockerfile, whose build command must stay this one.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/reclaim ./cmd/reclaim
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/graphsim ./cmd/graphsim

test:
	$(GO) vet ./...
	$(GO) test -race ./...

# The sample wave has invalid and duplicate rows on purpose, so reclaim exits with 1 there:
# the demo accepts 0 and 1 and fails on anything else.
demo: build
	rm -rf $(DEMO_OUT)
	$(BIN)/reclaim run --simulate --input configs/sample.csv --out-dir $(DEMO_OUT); \
		code=$$?; [ $$code -le 1 ] || exit $$code
	@echo
	@echo "Outputs in $(DEMO_OUT)/: outcomes.csv (one line per input row), summary.csv, checkpoint.json"
	@head -n 6 $(DEMO_OUT)/outcomes.csv

# The benchmarks take about 8 minutes on a 2-core machine and rewrite the generated section of
# BENCHMARKS.md. BENCH_FLAGS picks a part, such as BENCH_FLAGS="-only overhead -scale 0.1".
bench: build
	$(GO) run ./cmd/reclaim-bench -reclaim $(BIN)/reclaim -out BENCHMARKS.md $(BENCH_FLAGS)

# A container image for Kubernetes, built by the Dockerfile with the version from git.
image:
	$(ENGINE) build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

clean:
	rm -rf $(BIN) $(DEMO_OUT)
