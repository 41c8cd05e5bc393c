// Package app wires the store, the runner and the views into the desktop app, and
// parses the headless subcommands that share the GUI's store.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// CLI runs mem1lab's subcommands. Its writers and environment are fields so tests
// can capture output.
type CLI struct {
	Stdout io.Writer
	Stderr io.Writer
	// GUI opens the desktop app; nil means the app has no GUI (headless builds).
	GUI func(opts GUIOptions) error
}

// Main runs mem1lab with the process's arguments (without the program name) and
// returns the exit status.
func Main(args []string) int {
	c := &CLI{Stdout: os.Stdout, Stderr: os.Stderr, GUI: RunGUI}
	return c.Run(args)
}

type command struct {
	name, args, summary string
	run                 func(c *CLI, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"import", "[--bundle DIR] [--hotpot FILE] [--nq FILE] [--bleve]", "import the QA bundle (or raw HotpotQA/NQ-open files) into the store", (*CLI).cmdImport},
		{"run", "[--config FILE.toml] [flags] | --resume ID [--retry-failed]", "compose tasks and run an experiment against an OpenAI-compatible endpoint (each endpoint is probed first; exits 1 when any rollout failed, with a count per failure kind)", (*CLI).cmdRun},
		{"resume", "ID [--env URL|demo]", "continue a cancelled or interrupted experiment of any task family (qa or webshop) from its last stored turns", (*CLI).cmdResume},
		{"ls", "", "list experiments in the store", (*CLI).cmdLs},
		{"template", "import FILE [--name NAME] | list", "keep a prompt template in the store (imported once, then picked by name with run --template-name)", (*CLI).cmdTemplate},
		{"cancel", "ID", "cancel a running experiment (its finished turns are kept; `run --resume ID` continues it)", (*CLI).cmdCancel},
		{"pause", "ID [--resume]", "pause a running experiment, or let it go on with --resume", (*CLI).cmdPause},
		{"show", "ROLLOUT", "print a stored rollout turn by turn", (*CLI).cmdShow},
		{"score", "FILE.jsonl [--scheme mem1|squad] [--json] [--full]", "rescore trajectories in the MEM1 reference pipeline's JSONL (EM, F1, eval.py's peak tokens, dependency, compression ratio)", (*CLI).cmdScore},
		{"import-trajectories", "FILE.jsonl [--name NAME] [--policy P] [--model M]", "load the MEM1 reference pipeline's JSONL into the store as an experiment (all lines or none)", (*CLI).cmdImportTrajectories},
		{"export", "--experiment ID --what TABLE --out FILE", "write an experiment's table as CSV (TABLE: rollouts, turns, aggregates, comparisons, or the memory diagnostics composition, retention, retention-curves, positions, state-growth), or its trajectories as MEM1 JSONL (TABLE: trajectories)", (*CLI).cmdExport},
		{"compare", "--experiment ID [--experiment ID] --a policy=mem1 --b policy=full [--metric em|f1|peak|time] [--json]", "paired statistics of two settings that differ in one factor, on the same tasks", (*CLI).cmdCompare},
		{"paper-figure", "--experiment ID --out FIG.pdf|svg [--size single|double] [--a policy=mem1 --b policy=full]", "write the multi-panel paper figure (EM and peak tokens vs objectives, frontier, retention) and its caption file", (*CLI).cmdPaperFigure},
		{"plot", "--experiment ID --chart accuracy|peak|context|frontier|time|turns --out FIG.pdf|svg|png", "draw a chart of stored experiments as a publication figure (--overlay adds MEM1 Table 1)", (*CLI).cmdPlot},
		{"retrieve-server", "[--corpus FILE.jsonl] [--addr HOST:PORT]", "serve a corpus over MEM1/Search-R1's POST /retrieve protocol (BM25), for --retriever URL", (*CLI).cmdRetrieveServer},
		{"search", "[--retriever bm25|bm25-tuned|bleve] [--k 3] [--questions N] [--json] WORDS…", "query the passage corpus with timings (BM25 via FTS5, tuned FTS5 or a bleve index beside the store)", (*CLI).cmdSearch},
		{"oracle", "[--addr HOST:PORT]", "serve a retrieval-oracle MEM1 agent (OpenAI-compatible, no GPU) for pipeline checks", (*CLI).cmdOracle},
		{"websearch-demo", "[--addr HOST:PORT]", "serve Serper's search API shape over the store's BM25 index, for --retriever serper:URL without the internet", (*CLI).cmdWebSearchDemo},
		{"webshop-demo", "[--addr HOST:PORT]", "serve a small fake WebShop in AgentGym's protocol (synthetic products; reward without the type term)", (*CLI).cmdWebShopDemo},
		{"webshop-run", "[--env URL|demo] [--goals 0-9] [--endpoint URL --model M] [--policy mem1|full|window:K|summary:K|resum|memagent|mem0|amem] | --resume ID --env URL", "play WebShop episodes (scripted shopper or a model) into the store: reward ×100, peak tokens, dependency, time", (*CLI).cmdWebShopRun},
		{"help", "", "this list", nil},
	}
}

// Run dispatches one invocation: no arguments (or only flags) opens the GUI.
func (c *CLI) Run(args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return c.runGUI(args)
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		c.usage(c.Stdout)
		return 0
	}
	for _, cmd := range commands() {
		if cmd.name != name || cmd.run == nil {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := cmd.run(c, ctx, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(c.Stderr, "mem1lab %s: %v\n", name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(c.Stderr, "mem1lab: unknown command %q\n\n", name)
	c.usage(c.Stderr)
	return 2
}

func (c *CLI) usage(w io.Writer) {
	fmt.Fprintln(w, "mem1lab — a workbench for long-horizon agents with consolidated memory (MEM1)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	fmt.Fprintln(w, "  mem1lab [--db PATH] [--bundle DIR]")
	fmt.Fprintln(w, "      open the desktop app")
	for _, cmd := range commands() {
		writeWrapped(w, "  ", "      ", strings.TrimSpace("mem1lab "+cmd.name+" "+cmd.args))
		writeWrapped(w, "      ", "      ", cmd.summary)
	}
	fmt.Fprintln(w)
	writeWrapped(w, "", "  ", fmt.Sprintf("Every command takes --db PATH (default %s).", DefaultDBPath()))
	fmt.Fprintln(w, "`mem1lab COMMAND -h` lists a command's flags.")
}

// helpWidth is the widest line `mem1lab help` prints.
const helpWidth = 80

// writeWrapped writes text word-wrapped at helpWidth columns: the first line
// after first, the others after rest. A single word longer than a line is
// left whole.
func writeWrapped(w io.Writer, first, rest, text string) {
	line, indent := "", first
	for _, word := range strings.Fields(text) {
		if line != "" && len([]rune(indent+line+" "+word)) > helpWidth {
			fmt.Fprintln(w, indent+line)
			line, indent = "", rest
		}
		if line == "" {
			line = word
		} else {
			line += " " + word
		}
	}
	if line != "" {
		fmt.Fprintln(w, indent+line)
	}
}

func (c *CLI) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("mem1lab "+name, flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	return fs
}

// openStore opens the store and, when it holds no questions yet and a bundle is
// found, imports the bundle first.
func (c *CLI) openStore(ctx context.Context, path, bundle string) (*storage.Store, error) {
	st, err := openLab(path)
	if err != nil {
		return nil, err
	}
	if bundle == "" {
		bundle = DefaultBundleDir()
	}
	if bundle != "" {
		done, err := st.BundleImported(ctx)
		if err != nil {
			st.Close()
			return nil, err
		}
		if !done {
			fmt.Fprintf(c.Stderr, "importing %s into %s …\n", bundle, path)
			stats, err := st.ImportBundleBulk(ctx, bundle)
			if err != nil {
				st.Close()
				return nil, err
			}
			fmt.Fprintf(c.Stderr, "imported %d questions and %d passages in %s\n",
				stats.Questions, stats.Passages, stats.Elapsed.Round(time.Millisecond))
		}
	}
	return st, nil
}

// openExisting opens a store that must already exist: commands that only read
// or change recorded experiments refuse to create an empty store at a mistyped
// path.
func openExisting(path string) (*storage.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return openLab(path)
}

// openLab opens the store and computes the paper figures (MEM1 eval.py's peak
// tokens, dependency, compression ratio) of finished rollouts stored before
// they existed, from their stored turns (experiments.BackfillPaperMetrics).
func openLab(path string) (*storage.Store, error) {
	st, err := storage.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := experiments.BackfillPaperMetrics(context.Background(), st); err != nil {
		st.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return st, nil
}

// openReading opens an existing store for a command that only reads it (ls,
// show, export, plot): read-only, so a store the user may not write (or one on
// a read-only disk) still opens. A store from an older build is migrated first
// through a read-write open, which needs write access.
func openReading(path string) (*storage.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	st, err := storage.OpenReadOnly(path)
	if errors.Is(err, storage.ErrNeedsMigration) {
		return storage.Open(path)
	}
	return st, err
}

// openCaching opens an existing store for a command that reads and keeps a
// cache of what it computed (the memory diagnostics): read-write when the
// store can be written, else read-only, when nothing is cached.
func openCaching(path string) (*storage.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	st, _, err := openGUIStore(path, false)
	return st, err
}

func (c *CLI) cmdImport(ctx context.Context, args []string) error {
	fs := c.flags("import")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	bundle := fs.String("bundle", "", "QA bundle folder (unified/questions.jsonl, unified/corpus.jsonl); default: ../shared/data/qa-bundle")
	hotpot := fs.String("hotpot", "", "raw HotpotQA distractor JSONL (Hugging Face hotpot_qa rows)")
	nq := fs.String("nq", "", "raw NQ-open JSONL ({question, answer[]})")
	withBleve := fs.Bool("bleve", false, "also build the bleve index beside the store (for --retriever bleve)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := storage.Open(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	var total storage.ImportStats
	add := func(s storage.ImportStats) {
		total.Questions += s.Questions
		total.Passages += s.Passages
		total.Files = append(total.Files, s.Files...)
		total.Elapsed += s.Elapsed
	}
	if *hotpot == "" && *nq == "" {
		dir := *bundle
		if dir == "" {
			dir = DefaultBundleDir()
		}
		if dir == "" {
			return errors.New("no bundle found: pass --bundle DIR (the folder holding unified/questions.jsonl)")
		}
		s, err := st.ImportBundleBulk(ctx, dir)
		if err != nil {
			return err
		}
		add(s)
	}
	if *hotpot != "" {
		s, err := st.ImportHotpotDistractor(ctx, *hotpot)
		if err != nil {
			return err
		}
		add(s)
	}
	if *nq != "" {
		s, err := st.ImportNQOpen(ctx, *nq)
		if err != nil {
			return err
		}
		add(s)
	}
	fmt.Fprintf(c.Stdout, "imported %d questions and %d passages from %d file(s) in %s\n",
		total.Questions, total.Passages, len(total.Files), total.Elapsed.Round(time.Millisecond))
	if *withBleve {
		if err := c.buildBleve(ctx, st); err != nil {
			return err
		}
	}
	infos, err := st.Datasets(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "dataset\tquestions\tpassages")
	for _, d := range infos {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", d.Name, d.Questions, d.Passages)
	}
	return tw.Flush()
}

// runFlags binds every RunConfig field to a flag of the same key.
func runFlags(fs *flag.FlagSet, cfg *experiments.RunConfig) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "experiment name")
	fs.StringVar(&cfg.Endpoint, "endpoint", cfg.Endpoint, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
	fs.StringVar(&cfg.Model, "model", cfg.Model, "model name sent with each request")
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "completions (raw Qwen chat prefix, as MEM1) or chat")
	fs.StringVar(&cfg.APIKeyEnv, "api-key-env", cfg.APIKeyEnv, "name of the environment variable holding the API key (the key is never stored)")
	fs.Float64Var(&cfg.Temperature, "temperature", cfg.Temperature, "sampling temperature")
	fs.Float64Var(&cfg.TopP, "top-p", cfg.TopP, "nucleus sampling top_p (0 = not sent, as MEM1's full-history baseline)")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", cfg.MaxTokens, "max tokens generated per turn (0 = not sent)")
	fs.Float64Var(&cfg.TimeoutSeconds, "timeout", cfg.TimeoutSeconds, "per-request timeout in seconds")
	fs.Var(datasetFlag{cfg}, "dataset", "dataset: hotpotqa, nq or musique; a list such as hotpotqa,nq (with --compose mixed) mixes their questions in every task")
	fs.Var(objectivesFlag{cfg}, "objectives", "objectives (questions) per task; a list such as 1,2,4,8,16 runs one setting per value")
	fs.IntVar(&cfg.Tasks, "tasks", cfg.Tasks, "tasks to run (0 = every task the composition yields)")
	fs.StringVar(&cfg.Compose, "compose", cfg.Compose, "composition rule: consecutive (MEM1), random, or mixed (objectives from the --dataset list in turn)")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "seed for random composition and --sample")
	fs.IntVar(&cfg.Sample, "sample", cfg.Sample, "keep a random sample of K composed tasks, drawn as MEM1's rollout script does (pandas sample, random_state = --seed); 0 = all")
	fs.Var(policyFlag{cfg}, "policy", "memory policy: mem1, full (MEM1's full-history layout: one user message), full:messages, window:K, closed-book, summary:K, resum, memagent, mem0, mem0:add-only or amem; a list such as mem1,full runs one setting per policy")
	fs.IntVar(&cfg.MaxTurns, "max-turns", cfg.MaxTurns, fmt.Sprintf("max turns per rollout, at most %d (0 = 6 up to 4 objectives, 20 beyond)", experiments.MaxTurnsLimit))
	fs.IntVar(&cfg.TopK, "top-k", cfg.TopK, "passages per search")
	fs.StringVar(&cfg.Template, "template", cfg.Template, "prompt template file with a {questions} slot (default: built-in)")
	fs.StringVar(&cfg.TemplateName, "template-name", cfg.TemplateName, "prompt template kept in the store (see `mem1lab template import`), recorded by content hash")
	fs.StringVar(&cfg.Scheme, "scheme", cfg.Scheme, "scoring scheme: mem1 or squad")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "rollouts in flight")
	fs.Int64Var(&cfg.MaxResponseBytes, "max-response-bytes", cfg.MaxResponseBytes, "largest reply body accepted (0 = 8 MiB); a longer one is a retried \"response too large\" failure")
	fs.Var(retrieverFlag{cfg}, "retriever", "retriever: bm25 (the store's index), bm25-tuned or bleve (engines over the same corpus), the URL of a MEM1/Search-R1 /retrieve server, or serper / serper:URL (web search, key from $SERPER_API_KEY or retriever.api_key_env; replies cached in the store)")
	memoryFlags(fs, cfg)
	fs.BoolVar(&cfg.Cache, "cache", cfg.Cache, "answer a model call from the store's response cache when the same endpoint and model got the very same request before (and searches from the retrieval cache)")
	fs.StringVar(&cfg.SessionHeader, "session-header", cfg.SessionHeader, "header carrying each rollout's session key for a sticky router (default X-Session-ID, - = none)")
	fs.StringVar(&cfg.Family, "family", cfg.Family, "task family: qa (retrieval QA, the default) or webshop (WebShop episodes; --endpoint scripted plays the scripted shopper)")
	fs.Var(webshopFlag{cfg, "env"}, "env", "webshop: the WebShop server's root URL (AgentGym agentenv-webshop), or demo: the fake WebShop in-process, whose reward has no product-type term (default demo)")
	fs.Var(webshopFlag{cfg, "goals"}, "goals", "webshop: goal indices, e.g. 0-9 or 3,7 (indices < 500 are the test split; default 0-9)")
}

// webshopFlag sets one key of RunConfig.WebShop (env or goals), creating the
// table when needed.
type webshopFlag struct {
	cfg *experiments.RunConfig
	key string
}

func (f webshopFlag) String() string {
	if f.cfg == nil || f.cfg.WebShop == nil {
		return ""
	}
	if f.key == "env" {
		return f.cfg.WebShop.Env
	}
	return f.cfg.WebShop.Goals
}

func (f webshopFlag) Set(s string) error {
	if f.cfg.WebShop == nil {
		f.cfg.WebShop = &experiments.WebShopSettings{}
	}
	if f.key == "env" {
		f.cfg.WebShop.Env = strings.TrimSpace(s)
		return nil
	}
	if _, err := experiments.ParseGoalList(s); err != nil {
		return err
	}
	f.cfg.WebShop.Goals = strings.TrimSpace(s)
	return nil
}

// retrieverFlag sets RunConfig.Retriever from "bm25" or a /retrieve URL,
// keeping the topk and (for a URL) the timeout a config file gave.
type retrieverFlag struct{ cfg *experiments.RunConfig }

func (f retrieverFlag) String() string {
	if f.cfg == nil {
		return ""
	}
	return f.cfg.Retriever.String()
}

func (f retrieverFlag) Set(s string) error {
	rc, err := experiments.ReplaceRetriever(f.cfg.Retriever, s)
	if err == nil {
		f.cfg.Retriever = rc
	}
	return err
}

// objectivesFlag sets RunConfig.Objectives from one number, or ObjectivesGrid
// from a comma-separated list (one setting per value).
type objectivesFlag struct{ cfg *experiments.RunConfig }

func (f objectivesFlag) String() string {
	if f.cfg == nil {
		return ""
	}
	parts := make([]string, 0, len(f.cfg.ObjectivesList()))
	for _, n := range f.cfg.ObjectivesList() {
		parts = append(parts, strconv.Itoa(n))
	}
	return strings.Join(parts, ",")
}

func (f objectivesFlag) Set(s string) error {
	var list []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", part)
		}
		list = append(list, n)
	}
	f.cfg.Objectives, f.cfg.ObjectivesGrid = list[0], nil
	if len(list) > 1 {
		f.cfg.ObjectivesGrid = list
	}
	return nil
}

// nameList splits a comma-separated flag value into its non-empty, trimmed
// names; none at all is an error naming what was expected.
func nameList(s, what string) ([]string, error) {
	var list []string
	for _, part := range strings.Split(s, ",") {
		if name := strings.TrimSpace(part); name != "" {
			list = append(list, name)
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no %s named", what)
	}
	return list, nil
}

// datasetFlag sets RunConfig.Dataset from one name, or Datasets (the sources
// of compose = "mixed") and Dataset (the first of them) from a comma-separated
// list.
type datasetFlag struct{ cfg *experiments.RunConfig }

func (f datasetFlag) String() string {
	if f.cfg == nil {
		return ""
	}
	if len(f.cfg.Datasets) > 0 {
		return strings.Join(f.cfg.Datasets, ",")
	}
	return f.cfg.Dataset
}

func (f datasetFlag) Set(s string) error {
	list, err := nameList(s, "dataset")
	if err != nil {
		return err
	}
	f.cfg.Dataset, f.cfg.Datasets = list[0], nil
	if len(list) > 1 {
		f.cfg.Datasets = list
	}
	return nil
}

// policyFlag sets RunConfig.Policy from one name, or Policies from a
// comma-separated list (one setting per policy).
type policyFlag struct{ cfg *experiments.RunConfig }

func (f policyFlag) String() string {
	if f.cfg == nil {
		return ""
	}
	return strings.Join(f.cfg.PolicyList(), ",")
}

func (f policyFlag) Set(s string) error {
	list, err := nameList(s, "policy")
	if err != nil {
		return err
	}
	f.cfg.Policy, f.cfg.Policies = list[0], nil
	if len(list) > 1 {
		f.cfg.Policies = list
	}
	return nil
}

// configArg finds the value of --config (or -config) in args, "" when absent.
func configArg(args []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (c *CLI) cmdRun(ctx context.Context, args []string) error {
	// The config file is the base; flags given on the command line override it.
	cfg := experiments.DefaultRunConfig()
	if path := configArg(args); path != "" {
		var err error
		if cfg, err = experiments.LoadRunConfig(path); err != nil {
			return err
		}
	}
	fs := c.flags("run")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	bundle := fs.String("bundle", "", "QA bundle imported first when the store is empty")
	fs.String("config", "", "TOML file with the same keys as the flags (flags given override it)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress line")
	resume := fs.Int64("resume", 0, "resume experiment ID (its unfinished and interrupted rollouts) instead of starting one")
	fresh := fs.Bool("new", false, "start a new experiment even when an unfinished one has the same config")
	noPreflight := fs.Bool("no-preflight", false, "skip probing each endpoint (GET /models and a one-token request) before queueing")
	retryFailed := fs.Bool("retry-failed", false, "with --resume: run the experiment's failed rollouts again, each from its last stored turn (done ones never run twice)")
	runFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *resume == 0 {
		if err := cfg.Validate(); err != nil {
			return err
		}
		if cfg.IsWebShop() {
			return c.runWebShop(ctx, *db, cfg, 0, "", *asJSON, *quiet)
		}
	} else if fam, err := storedFamily(ctx, *db, *resume); err != nil {
		return err
	} else if fam == core.FamilyWebShop {
		env := ""
		if flagSet(fs, "env") && cfg.WebShop != nil {
			env = cfg.WebShop.Env
		}
		return c.runWebShop(ctx, *db, cfg, *resume, env, *asJSON, *quiet)
	}
	if *retryFailed && *resume == 0 {
		return errors.New("--retry-failed needs --resume ID (the experiment whose failed rollouts to run again)")
	}
	var st *storage.Store
	var err error
	if *resume != 0 {
		st, err = openLab(*db)
	} else {
		st, err = c.openStore(ctx, *db, *bundle)
	}
	if err != nil {
		return err
	}
	defer st.Close()

	r := &experiments.Runner{Store: st, Env: st, RetryFailed: *retryFailed}
	if *resume == 0 {
		// A named template is recorded by content hash before the config is hashed.
		if cfg, err = experiments.ResolveTemplate(ctx, st, cfg); err != nil {
			return err
		}
	}
	if !*noPreflight {
		pcfg := cfg
		if *resume != 0 {
			if pcfg, err = r.StoredConfig(ctx, *resume); err != nil {
				return err
			}
		}
		if err := experiments.Preflight(ctx, pcfg, nil); err != nil {
			return fmt.Errorf("preflight failed, nothing queued (--no-preflight skips the check):\n%w", err)
		}
	}
	if *resume == 0 && !*fresh {
		// An identical config that did not finish is resumed, not duplicated.
		ids, err := st.ExperimentsByHash(ctx, cfg.Hash())
		if err != nil {
			return err
		}
		for _, id := range ids {
			e, err := st.Experiment(ctx, id)
			if err != nil {
				return err
			}
			if e.Done+e.Failed < e.Rollouts {
				return fmt.Errorf("experiment %d has this config and %d of its %d rollouts unfinished: "+
					"resume it with `mem1lab run --resume %d`, or pass --new to start another", id, e.Rollouts-e.Done-e.Failed, e.Rollouts, id)
			}
		}
	}
	var bar *progressLine
	if !*quiet {
		bar = newProgressLine(c.Stderr)
	}
	onProgress := func(p experiments.Progress) {
		if bar != nil {
			bar.update(p)
		}
	}
	var summary experiments.Summary
	if *resume != 0 {
		summary, err = r.Resume(ctx, *resume, onProgress)
	} else {
		summary, err = r.Run(ctx, cfg, onProgress)
	}
	if bar != nil {
		bar.finish()
	}
	if err != nil && summary.Experiment == 0 {
		return err
	}
	if err != nil && len(summary.Groups) == 0 {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		if encErr := enc.Encode(summary); encErr != nil {
			return encErr
		}
	} else {
		writeSummary(c.Stdout, summary)
	}
	return errors.Join(err, failedRollouts(context.WithoutCancel(ctx), st, summary.Experiment))
}

// failedRollouts is nil when no rollout of experiment expID failed, else an
// error saying how many failed followed by one line per failure kind: its
// count and the first such rollout's reason (cut to fit a terminal line).
func failedRollouts(ctx context.Context, st *storage.Store, expID int64) error {
	rows, err := st.Rollouts(ctx, expID)
	if err != nil {
		return err
	}
	type kind struct {
		n     int
		first string
	}
	byKind := map[string]*kind{}
	var order []string
	failed := 0
	for _, r := range rows {
		if r.Status != storage.StatusFailed {
			continue
		}
		failed++
		k := experiments.FailureKind(r.Error)
		if byKind[k] == nil {
			byKind[k] = &kind{first: fmt.Sprintf("rollout %d: %s", r.ID, strings.TrimPrefix(r.Error, k+": "))}
			order = append(order, k)
		}
		byKind[k].n++
	}
	if failed == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d rollouts failed (`mem1lab run --resume %d --retry-failed` runs them again)", failed, len(rows), expID)
	for _, k := range order {
		line := fmt.Sprintf("  %d %s, first %s", byKind[k].n, k, strings.ReplaceAll(byKind[k].first, "\n", " "))
		if r := []rune(line); len(r) > 160 {
			line = string(r[:159]) + "…"
		}
		b.WriteString("\n" + line)
	}
	return errors.New(b.String())
}

func writeSummary(w io.Writer, s experiments.Summary) {
	fmt.Fprintf(w, "experiment %d\n", s.Experiment)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tobjectives\trollouts\tfailed\tmean EM\tmean F1\tmean request peak\tmean paper peak\tmean s\t")
	for _, g := range s.Groups {
		paper := "-"
		if g.PaperPeakN > 0 {
			paper = fmt.Sprintf("%.0f (n=%d)", g.MeanPaperPeakTokens, g.PaperPeakN)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.3f\t%.0f\t%s\t%.2f\t\n",
			g.Policy, g.Objectives, g.Rollouts, g.Failed, g.MeanEM, g.MeanF1, g.MeanPeakTokens, paper, g.MeanSeconds)
	}
	tw.Flush()
}

// progressLine draws a one-line progress bar: refreshed in place on a terminal,
// one line per finished rollout otherwise.
type progressLine struct {
	w        io.Writer
	tty      bool
	lastDone int
	started  time.Time
	drawn    bool
}

func newProgressLine(w io.Writer) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressLine{w: w, tty: tty, lastDone: -1, started: time.Now()}
}

func (p *progressLine) update(pr experiments.Progress) {
	finished := pr.Done + pr.Failed
	if !p.tty && finished == p.lastDone {
		return
	}
	p.lastDone = finished
	const width = 30
	filled := 0
	if pr.Total > 0 {
		filled = width * finished / pr.Total
	}
	line := fmt.Sprintf("[%s%s] %d/%d rollouts  %d failed  %d running  %d turns  %.1f turns/s  %.0f tok/s  %s",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		finished, pr.Total, pr.Failed, pr.Running, pr.Turns, pr.TurnsPerSecond, pr.TokensPerSecond,
		time.Since(p.started).Round(time.Second))
	if pr.ETA > 0 {
		line += "  ETA " + pr.ETA.Round(time.Second).String()
	}
	if pr.Retries > 0 {
		line += fmt.Sprintf("  %d retries", pr.Retries)
	}
	if pr.Paused {
		line += "  PAUSED"
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progressLine) finish() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

func (c *CLI) cmdLs(ctx context.Context, args []string) error {
	fs := c.flags("ls")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := openReading(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	exps, err := st.Experiments(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tname\tcreated\tstatus\trollouts\tdone\tfailed\tmean EM\tmean F1")
	for _, e := range exps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%.3f\t%.3f\n", e.ID, e.Name,
			e.CreatedAt.Local().Format("2006-01-02 15:04"), e.Status, e.Rollouts, e.Done, e.Failed, e.MeanEM, e.MeanF1)
	}
	return tw.Flush()
}

func (c *CLI) cmdShow(ctx context.Context, args []string) error {
	fs := c.flags("show")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mem1lab show ROLLOUT (a rollout id, see the Runs screen or `mem1lab ls`)")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("rollout id %q is not a number", fs.Arg(0))
	}
	st, err := openReading(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := st.Rollout(ctx, id)
	if err != nil {
		return err
	}
	writeRollout(c.Stdout, d)
	return nil
}

func writeRollout(w io.Writer, d storage.RolloutDetail) {
	fmt.Fprintf(w, "rollout %d  experiment %d  task %s  policy %s  model %s  status %s\n",
		d.ID, d.ExperimentID, d.TaskKey, d.Policy, d.Model, d.Status)
	if d.Error != "" {
		fmt.Fprintf(w, "error: %s\n", d.Error)
	}
	fmt.Fprintf(w, "EM %.3g  F1 %.3g  peak tokens %d  total tokens %d  turns %d  %.2f s\n",
		d.EM, d.F1, d.PeakTokens, d.TotalTokens, d.RolloutRow.Turns, d.Seconds)
	fmt.Fprintf(w, "%s\n\n", paperLine(d.RolloutRow))
	for i, o := range d.Task.Objectives {
		mark := ""
		if i < len(d.Score.PerObjective) {
			po := d.Score.PerObjective[i]
			mark = fmt.Sprintf("  → %q (EM %.0f, F1 %.2f)", po.Answer, po.EM, po.F1)
		}
		fmt.Fprintf(w, "objective %d: %s\n  gold: %s%s\n", i+1, o.Question, strings.Join(o.Gold, " | "), mark)
	}
	for _, t := range d.Turns {
		fmt.Fprintf(w, "\n── turn %d ── %s  context %d + generated %d tokens  %s  finish %s\n",
			t.Index+1, t.Action, t.PromptTokens, t.CompletionTokens, t.Latency.Round(time.Millisecond), t.FinishReason)
		section(w, "internal state", t.InternalState)
		section(w, "query", t.Query)
		section(w, "information", t.Information)
		section(w, "answer", t.Answer)
		if t.Action == core.ActionNone {
			section(w, "response", t.Response)
		}
		writeMemory(w, t)
	}
}

func section(w io.Writer, title, text string) {
	if strings.TrimSpace(text) == "" {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// parseFlagsOnly parses args into fs for a command that takes flags only:
// flags may stand anywhere (see reorder), and any positional argument is an
// error naming the first one.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// reorder moves flags after positional arguments to the front, so
// `mem1lab show 12 --db x.db` works like `mem1lab show --db x.db 12`.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") {
				if f := fs.Lookup(name); f != nil {
					if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !(ok && bf.IsBoolFlag()) && i+1 < len(args) {
						flags = append(flags, args[i+1])
						i++
					}
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func (c *CLI) cmdScore(ctx context.Context, args []string) error {
	fs := c.flags("score")
	fs.String("db", DefaultDBPath(), "accepted like every command's; scoring reads only FILE")
	scheme := fs.String("scheme", "mem1", "scoring scheme: "+strings.Join(core.Schemes(), " or "))
	asJSON := fs.Bool("json", false, "one JSON object per input line, then the means")
	full := fs.Bool("full", false, "peak tokens and dependency by eval.py's full-history rule (default: its consolidating rule)")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mem1lab score FILE.jsonl [--scheme mem1|squad] [--json] [--full]")
	}
	ts, err := experiments.ReadTrajectoriesJSONL(fs.Arg(0))
	if err != nil {
		return err
	}
	lines, meanEM, meanF1, err := experiments.ScoreTrajectories(ts, *scheme)
	if err != nil {
		return err
	}
	// eval.py's token metrics (o200k counts); nil is eval.py's None (JSON null).
	pms := make([]core.PaperMetrics, len(ts))
	for i, t := range ts {
		pms[i] = t.PaperMetrics(*full)
	}
	means := experiments.MeanPaperMetrics(pms)
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		for i, l := range lines {
			rec := map[string]any{"line": l.Line, "em": l.Score.EM, "f1": l.Score.F1,
				"exact_match_lenient": ts[i].LenientExactMatch(),
				"peak_tokens":         pms[i].PeakTokens, "dependency": pms[i].Dependency,
				"compression_ratio": pms[i].CompressionRatio}
			if l.Error != "" {
				rec = map[string]any{"line": l.Line, "error": l.Error}
			}
			if err := enc.Encode(rec); err != nil {
				return err
			}
		}
		return enc.Encode(map[string]any{"mean_em": meanEM, "mean_f1": meanF1,
			"mean_peak_tokens":       nullIfNone(means.PeakTokens, means.PeakTokensN),
			"mean_dependency":        nullIfNone(means.Dependency, means.DependencyN),
			"mean_compression_ratio": nullIfNone(means.CompressionRatio, means.CompressionRatioN),
			"token_source":           core.TokenSourceO200k, "peak_rule": experiments.PaperRuleName(*full)})
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "line\tobjectives\tEM\tF1\tpeak tokens\tnote\t")
	for i, l := range lines {
		if l.Error != "" {
			fmt.Fprintf(tw, "%d\t%d\t\t\t\t%s\t\n", l.Line, len(ts[i].Gold), "error line (left out of the means)")
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%.3f\t%.3f\t%s\t%s\t\n", l.Line, len(ts[i].Gold), l.Score.EM, l.Score.F1,
			optInt(pms[i].PeakTokens), scoreNote(l.Score))
	}
	fmt.Fprintf(tw, "mean\t\t%.3f\t%.3f\t%.1f\t\t\n", meanEM, meanF1, means.PeakTokens)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.Stdout, "peak tokens: o200k counts, eval.py's %s rule, mean over %d of %d lines (Exact_match 0 left out)\n",
		experiments.PaperRuleName(*full), means.PeakTokensN, len(ts))
	return err
}

// paperLine describes a rollout's token figures: the request peak's source
// and MEM1 eval.py's figures (o200k), "-" where eval.py gives None.
func paperLine(r storage.RolloutRow) string {
	src := r.TokenSource
	if src == "" {
		src = "unknown"
	}
	s := "request peak " + strconv.Itoa(r.RequestPeakTokens) + " (" + src + ")"
	if r.Paper == nil {
		return s + "  paper figures not computed"
	}
	m := r.Paper
	ratio := "-"
	if m.CompressionRatio != nil {
		ratio = strconv.FormatFloat(*m.CompressionRatio, 'f', 3, 64)
	}
	return fmt.Sprintf("%s  paper peak %s (eval.py %s rule, o200k)  dependency %s  compression ratio %s  lenient EM %d",
		s, optInt(m.PeakTokens), experiments.PaperRuleName(m.Full), optInt(m.Dependency), ratio, m.ExactMatchLenient)
}

// nullIfNone is a mean over n values, or JSON null when n is 0.
func nullIfNone(mean float64, n int) any {
	if n == 0 {
		return nil
	}
	return mean
}

// optInt formats an optional count, "-" for none.
func optInt(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// scoreNote says why a trajectory scored 0 when the reason is structural.
func scoreNote(s core.Score) string {
	switch {
	case s.Unbalanced:
		return "unbalanced answer tags"
	case s.NoAnswer:
		return "no answer"
	case s.CountMismatch:
		return fmt.Sprintf("%d answers", len(s.Answers))
	}
	return ""
}
