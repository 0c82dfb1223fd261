# reclaim: build, test and demo targets. "make demo" and "make test" are the README's two commands.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
DEMO_OUT ?= demo-out

.PHONY: build test demo clean

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/reclaim ./cmd/reclaim
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/graphsim ./cmd/graphsim

test:
	$(GO) vet ./...
	$(GO) test -race ./...

# The sample wave has invalid, duplicate and unknown rows on purpose, so reclaim exits with 1 there:
# the demo accepts 0 and 1 and fails on anything else.
demo: build
	rm -rf $(DEMO_OUT)
	$(BIN)/reclaim run --simulate --input configs/sample.csv --out-dir $(DEMO_OUT); \
		code=$$?; [ $$code -le 1 ] || exit $$code
	@echo
	@echo "Outputs in $(DEMO_OUT)/: outcomes.csv (one line per input row), summary.csv, checkpoint.json"
	@head -n 6 $(DEMO_OUT)/outcomes.csv

clean:
	rm -rf $(BIN) $(DEMO_OUT)
