# mem1lab — the two set-up commands are `make run` and `make test`; everything else is optional.
GO        ?= go
TAGS      := sqlite_fts5
TESTTAGS  := ci,sqlite_fts5
BUNDLE    ?= $(abspath $(CURDIR)/../shared/data/qa-bundle)
BIN       := bin/mem1lab
PKGS      := ./...
# staticcheck, pinned; v0.8.x is the release line that understands Go 1.26.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
export CGO_ENABLED := 1

.PHONY: run build test vet lint staticcheck bench fuzz soak screenshot gui-check deps deps-gui deps-screenshot clean

## run: install what the desktop build needs, build, and open the app on the default store
run: build
	./$(BIN) --bundle "$(BUNDLE)"

## build: the desktop (OpenGL) binary in bin/
build: deps-gui
	$(GO) build -tags $(TAGS) -o $(BIN) .

## test: go vet, staticcheck, every unit and integration test (race detector on, Fyne's
## in-memory driver; the import rules are TestImportRules in ./internal/importrules), then
## the Xvfb smoke test of the real desktop build and the Xvfb walkthrough (gui-check)
test: deps-screenshot lint
	$(GO) vet -tags $(TESTTAGS) $(PKGS)
	$(GO) test -race -count=1 -timeout 20m -tags $(TESTTAGS) $(PKGS)
	$(GO) test -count=1 -tags smoke,$(TAGS) -run TestSmoke ./app
	$(MAKE) gui-check GUI_OUT=bin/gui-check

## lint: staticcheck at the pinned version (installed with go install when missing or another version)
lint: staticcheck
	@unformatted="$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt -w these: $$unformatted"; exit 1; fi
	$(STATICCHECK) -tags $(TESTTAGS) $(PKGS)
	$(STATICCHECK) -tags smoke,$(TAGS) ./app

staticcheck:
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(patsubst v%,%,$(STATICCHECK_VERSION)))' || \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## bench: speed and memory benchmarks, reported (never asserted)
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -tags $(TESTTAGS) $(PKGS)

.PHONY: bench-charts
## bench-charts: the chart and export benchmarks alone (1M-turn CSV export: peak RSS/heap; 10k-point redraw)
bench-charts: deps
	$(GO) test -run '^$$' -bench 'TurnsCSV1M|Redraw10k' -benchmem -tags $(TESTTAGS) ./experiments/...

.PHONY: bench-throughput
## bench-throughput: the runner's throughput benchmarks alone, once each (runner vs a bare go-openai loop against a local stub: 20/50 ms latency at concurrency 64/256, and durable turns/s at zero latency)
bench-throughput: deps
	$(GO) test -run '^$$' -bench 'Throughput' -benchtime 1x -tags $(TESTTAGS) ./experiments/

.PHONY: bench-browse
## bench-browse: the trace inspector's benchmarks alone (rollout browser over a generated 100k-rollout / 1M-turn store, made once in $TMPDIR, about 70 s; opening a 20-turn rollout)
bench-browse: deps
	$(GO) test -run '^$$' -bench 'Browse|OpenRollout|Facets|Trace' -benchmem -tags $(TESTTAGS) ./storage/ ./views/

## soak: the fault soak (not in `make test`): a 200-rollout run against a scripted server failing
## 30% of its generations (500s, 429 with Retry-After, hangs, resets mid-body, 10 MB bodies,
## malformed JSON, empty choices); asserts peak RSS < 300 MB, linear store growth and that every
## rollout ends done or failed with a reason, then prints the figures
soak: deps
	$(GO) test -count=1 -v -timeout 30m -tags $(TESTTAGS),soak -run '^TestSoak$$' ./experiments/

.PHONY: bench-retrieval
## bench-retrieval: the retrieval benchmark alone (a 1M-passage corpus generated from the bundle and imported by `mem1lab import` once in $TMPDIR, then FTS5 today / tuned FTS5 / bleve on bundle questions; first run several minutes; MEM1LAB_BENCH_PASSAGES=N for another size)
bench-retrieval: deps
	$(GO) test -run '^$$' -bench 'Retrieval1M' -benchtime 1x -timeout 60m -tags $(TESTTAGS) ./app/

## fuzz: longer runs of the response-parser and o200k piece-count fuzz tests
fuzz: deps
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./core
	$(GO) test -run '^$$' -fuzz FuzzO200kTokens -fuzztime 60s ./core

## gui-check: the Xvfb walkthrough (keyboard-driven, oracle agent, CLI run beside
## the window, quit during a run and restart); fails when the window outgrows the screen
## (screenshots in $(GUI_OUT); `make test` keeps its own in bin/gui-check)
GUI_OUT ?= docs/screenshots/gui-check
gui-check: deps-screenshot build
	BUNDLE="$(BUNDLE)" BIN="$(BIN)" OUT="$(GUI_OUT)" scripts/gui-check.sh

## screenshot: run the app under Xvfb on a demo store and save PNGs in docs/
screenshot: deps-screenshot build
	BUNDLE="$(BUNDLE)" BIN="$(BIN)" scripts/screenshot.sh

deps:
	scripts/deps.sh test
	$(GO) mod download

deps-gui:
	scripts/deps.sh run
	$(GO) mod download

deps-screenshot:
	scripts/deps.sh screenshot
	$(GO) mod download

clean:
	rm -rf bin
