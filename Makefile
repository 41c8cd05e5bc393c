# mem1lab — the two set-up commands are `make run` and `make test`; everything else is optional.
GO        ?= go
TAGS      := sqlite_fts5
TESTTAGS  := ci,sqlite_fts5
BUNDLE    ?= $(abspath $(CURDIR)/../shared/data/qa-bundle)
BIN       := bin/mem1lab
PKGS      := ./...
export CGO_ENABLED := 1

.PHONY: run build test vet bench fuzz screenshot gui-check deps deps-gui deps-screenshot clean

## run: install what the desktop build needs, build, and open the app on the default store
run: build
	./$(BIN) --bundle "$(BUNDLE)"

## build: the desktop (OpenGL) binary in bin/
build: deps-gui
	$(GO) build -tags $(TAGS) -o $(BIN) .

## test: go vet, every unit and integration test (race detector on, Fyne's in-memory
## driver), then the one Xvfb smoke test of the real desktop build
test: deps-screenshot
	$(GO) vet -tags $(TESTTAGS) $(PKGS)
	$(GO) test -race -count=1 -timeout 20m -tags $(TESTTAGS) $(PKGS)
	$(GO) test -count=1 -tags smoke,$(TAGS) -run TestSmoke ./app

## bench: speed and memory benchmarks, reported (never asserted)
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -tags $(TESTTAGS) $(PKGS)

.PHONY: bench-charts
## bench-charts: the chart and export benchmarks alone (1M-turn CSV export: peak RSS/heap; 10k-point redraw)
bench-charts: deps
	$(GO) test -run '^$$' -bench 'TurnsCSV1M|Redraw10k' -benchmem -tags $(TESTTAGS) ./experiments/...

.PHONY: bench-browse
## bench-browse: the trace inspector's benchmarks alone (rollout browser over a generated 100k-rollout / 1M-turn store, made once in $TMPDIR, about 70 s; opening a 20-turn rollout)
bench-browse: deps
	$(GO) test -run '^$$' -bench 'Browse|OpenRollout|Facets|Trace' -benchmem -tags $(TESTTAGS) ./storage/ ./views/

## fuzz: a longer run of the response-parser fuzz test
fuzz: deps
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./core

## gui-check: the Xvfb walkthrough (keyboard-driven, oracle agent, CLI run beside
## the window, quit during a run and restart); fails when the window outgrows the screen
gui-check: deps-screenshot build
	BUNDLE="$(BUNDLE)" BIN="$(BIN)" scripts/gui-check.sh

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
