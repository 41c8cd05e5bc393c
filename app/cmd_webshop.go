package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/webshop"
)

// cmdWebShopDemo serves the fake WebShop (webshop.FakeServer) in AgentGym's
// protocol until ctx ends.
func (c *CLI) cmdWebShopDemo(ctx context.Context, args []string) error {
	fs := c.flags("webshop-demo")
	addr := fs.String("addr", "127.0.0.1:36001", "listen address (port 0 picks a free port)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	fake := webshop.NewFakeServer()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.Stderr, "mem1lab webshop-demo: %d products, %d goals (0..%d the test split); listening on http://%s\n"+
		"rewards omit WebShop's product-type term: not comparable with the paper's\n",
		len(fake.Products), len(fake.Goals), webshop.TestSplit-1, ln.Addr())
	return serveUntilDone(ctx, srv, ln, false)
}

// cmdWebShopRun plays WebShop episodes into the store: the scripted shopper
// or a model endpoint, against a WebShop server (AgentGym's, or the fake one
// started in-process with --env demo).
func (c *CLI) cmdWebShopRun(ctx context.Context, args []string) error {
	fs := c.flags("webshop-run")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	env := fs.String("env", "demo", "WebShop server root URL (AgentGym agentenv-webshop), or demo: the fake WebShop in-process")
	goals := fs.String("goals", "0-9", "goal indices, e.g. 0-99 or 3,7 (indices < 500 are the test split)")
	policy := fs.String("policy", core.PolicyMEM1, "mem1 (summary carried, think pruned), full (every turn), full:messages, window:K, or a memory baseline: summary:K, resum, memagent, mem0, mem0:add-only, amem (sub-calls to the same endpoint; not closed-book); a list such as mem1,full,amem plays every goal under each")
	maxTurns := fs.Int("max-turns", core.DefaultWebShopMaxTurns, "turns per episode")
	endpoint := fs.String("endpoint", "", "OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1); empty: the scripted shopper")
	model := fs.String("model", "", "model name at --endpoint")
	mode := fs.String("mode", experiments.ModeCompletions, "completions (Qwen chat prefix) or chat")
	keyEnv := fs.String("api-key-env", "", "environment variable holding the endpoint's API key")
	retries := fs.Int("retries", 2, "retries of a failed WebShop request or model call (HTTP 408, 429, 5xx, timeouts, dropped connections)")
	timeout := fs.Float64("timeout", 30, "seconds per WebShop request")
	resume := fs.Int64("resume", 0, "resume WebShop experiment ID")
	name := fs.String("name", "webshop", "experiment name")
	template := fs.String("template", "", "prompt template file with an {instruction} slot (and optionally {observation}, {think}, {memory}, {action}, {information}); default: built-in")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	plotOut := fs.String("plot", "", "also draw mean reward ×100 vs turns used to this file (.svg, .png or .pdf)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	var m core.Model = webshop.Scripted{}
	modelName := webshop.ScriptedModelName
	key := ""
	if *endpoint != "" {
		if *keyEnv != "" {
			key = os.Getenv(*keyEnv)
		}
		om, err := experiments.NewModel(experiments.Endpoint{BaseURL: *endpoint, Model: *model, Mode: *mode, APIKey: key,
			Temperature: 0.01, TopP: 0.95, MaxTokens: 1024, Timeout: 10 * time.Minute})
		if err != nil {
			return err
		}
		m, modelName = om, *model
	}
	st, err := openLab(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	r := &webshop.Runner{Store: st, Model: m, Backoff: func(a int) time.Duration { return time.Duration(a) * 500 * time.Millisecond },
		Redact: experiments.NewRedactor([]string{key}, *endpoint)}
	r.Progress = func(id int64, t core.Turn) {
		fmt.Fprintf(c.Stderr, "rollout %d turn %d: %s\n", id, t.Index, t.Query)
	}
	envURL, fake := *env, false
	if envURL == "demo" {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			return lerr
		}
		srv := &http.Server{Handler: webshop.NewFakeServer(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		envURL, fake = "http://"+ln.Addr().String(), true
	}
	var sum webshop.Summary
	if *resume > 0 {
		if envFlagSet(fs) {
			r.EnvURL = envURL // the stored server otherwise
		}
		sum, err = r.Resume(ctx, *resume)
	} else {
		gs, perr := webshop.ParseGoals(*goals)
		if perr != nil {
			return perr
		}
		tmpl := ""
		if *template != "" {
			b, rerr := os.ReadFile(*template)
			if rerr != nil {
				return rerr
			}
			if tmpl = string(b); !strings.Contains(tmpl, core.InstructionSlot) {
				return fmt.Errorf("%s: no %s slot", *template, core.InstructionSlot)
			}
		}
		wc := webshop.Config{EnvURL: envURL, Goals: gs, Policy: *policy, MaxTurns: *maxTurns,
			Model: modelName, Retries: *retries, Timeout: *timeout, FakeReward: fake, Template: tmpl}
		if strings.Contains(*policy, ",") {
			list, perr := nameList(*policy, "policy")
			if perr != nil {
				return perr
			}
			wc.Policy, wc.Policies = "", list
		}
		sum, err = r.Run(ctx, *name, wc)
	}
	if err != nil && sum.Experiment == 0 {
		return err
	}
	if *plotOut != "" {
		pts, perr := webshop.RewardByTurns(ctx, st, sum.Experiment)
		note := ""
		if fake {
			note = "fake WebShop: reward without the product-type term"
		}
		if perr == nil {
			perr = webshop.PlotRewardVsTurns(pts, fmt.Sprintf("WebShop, experiment %d", sum.Experiment), note, *plotOut)
		}
		if perr != nil {
			return perr
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		figs := func(f webshop.Figures) map[string]any {
			return map[string]any{"rollouts": f.Rollouts, "done": f.Done, "failed": f.Failed,
				"reward_x100": jsonNum(f.Reward100), "peak_tokens": jsonNum(f.PeakTokens), "dependency": jsonNum(f.Dependency),
				"seconds": jsonNum(f.Seconds)}
		}
		out := figs(sum.Figures)
		out["experiment"], out["fake_reward"] = sum.Experiment, fake
		var by []map[string]any
		for _, pf := range sum.ByPolicy {
			m := figs(pf.Figures)
			m["policy"] = pf.Policy
			by = append(by, m)
		}
		out["policies"] = by
		if jerr := enc.Encode(out); jerr != nil {
			return jerr
		}
		return err
	}
	fmt.Fprintf(c.Stdout, "experiment %d: %d rollouts, %d done, %d failed\n", sum.Experiment, sum.Rollouts, sum.Done, sum.Failed)
	line := func(prefix string, f webshop.Figures) {
		fmt.Fprintf(c.Stdout, "%sfinal reward ×100: %s   peak tokens: %s   dependency: %s   seconds/trajectory: %s\n",
			prefix, num(f.Reward100, 1), num(f.PeakTokens, 0), num(f.Dependency, 0), num(f.Seconds, 2))
	}
	if len(sum.ByPolicy) > 1 {
		for _, pf := range sum.ByPolicy {
			line(fmt.Sprintf("%-14s (%d done) ", pf.Policy, pf.Done), pf.Figures)
		}
	} else {
		line("", sum.Figures)
	}
	if fake {
		fmt.Fprintln(c.Stdout, "(fake WebShop: its reward has no product-type term; not comparable with the paper's Table 2)")
	}
	return err
}

func num(x float64, prec int) string {
	if math.IsNaN(x) {
		return "—"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func jsonNum(x float64) any {
	if math.IsNaN(x) {
		return nil
	}
	return x
}

func envFlagSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "env" })
	return set
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// storedFamily is experiment expID's task family as stored in db.
func storedFamily(ctx context.Context, db string, expID int64) (string, error) {
	st, err := openReading(db)
	if err != nil {
		return "", err
	}
	defer st.Close()
	return newLabRunner(st, nil).Family(ctx, expID)
}

// runWebShop is `mem1lab run` for family webshop: a new experiment for cfg
// (resumeID 0), or a resume of experiment resumeID on env ("" = the stored
// server, or a fresh fake WebShop for a demo run). It prints the progress
// line, then the summary (as for qa, with the reward as EM and F1) and the
// paper's WebShop figures; it fails when any rollout failed.
func (c *CLI) runWebShop(ctx context.Context, db string, cfg experiments.RunConfig, resumeID int64, env string, asJSON, quiet bool) error {
	st, err := openLab(db)
	if err != nil {
		return err
	}
	defer st.Close()
	r := newLabRunner(st, nil)
	defer r.Close()
	var bar *progressLine
	if !quiet {
		bar = newProgressLine(c.Stderr)
	}
	onProgress := func(p experiments.Progress) {
		if bar != nil {
			bar.update(p)
		}
	}
	var sum experiments.Summary
	if resumeID != 0 {
		sum, err = r.resumeAt(ctx, resumeID, env, onProgress)
	} else {
		sum, err = r.Run(ctx, cfg, onProgress)
	}
	if bar != nil {
		bar.finish()
	}
	if err != nil && sum.Experiment == 0 {
		return err
	}
	bg := context.WithoutCancel(ctx)
	fake := false
	if e, eerr := st.Experiment(bg, sum.Experiment); eerr == nil {
		var wc webshop.Config
		fake = json.Unmarshal([]byte(e.ConfigJSON), &wc) == nil && wc.FakeReward
	}
	if asJSON {
		out := struct {
			experiments.Summary
			Family     string `json:"family"`
			FakeReward bool   `json:"fake_reward"`
		}{sum, core.FamilyWebShop, fake}
		if encErr := json.NewEncoder(c.Stdout).Encode(out); encErr != nil {
			return encErr
		}
	} else {
		writeSummary(c.Stdout, sum)
		if len(sum.Groups) == 1 {
			g := sum.Groups[0]
			fmt.Fprintf(c.Stdout, "final reward ×100: %s   peak tokens: %s   seconds/trajectory: %s\n",
				num(g.MeanEM*100, 1), num(g.MeanPeakTokens, 0), num(g.MeanSeconds, 2))
		}
		if fake {
			fmt.Fprintln(c.Stdout, "(fake WebShop: its reward has no product-type term; not comparable with the paper's Table 2)")
		}
	}
	return errors.Join(err, failedRollouts(bg, st, sum.Experiment))
}

// cmdResume continues a stored experiment of any task family (`run --resume
// ID` does the same).
func (c *CLI) cmdResume(ctx context.Context, args []string) error {
	fs := c.flags("resume")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	env := fs.String("env", "", "webshop: another WebShop server of the same goals (demo = the fake one in-process); default the stored one")
	asJSON := fs.Bool("json", false, "print the summary as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one experiment ID: mem1lab resume ID")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("experiment ID %q: want a positive whole number", fs.Arg(0))
	}
	fam, err := storedFamily(ctx, *db, id)
	if err != nil {
		return err
	}
	if fam != core.FamilyWebShop {
		rest := []string{"--db", *db, "--resume", strconv.FormatInt(id, 10)}
		if *asJSON {
			rest = append(rest, "--json")
		}
		if *quiet {
			rest = append(rest, "--quiet")
		}
		return c.cmdRun(ctx, rest)
	}
	return c.runWebShop(ctx, *db, experiments.RunConfig{}, id, *env, *asJSON, *quiet)
}
