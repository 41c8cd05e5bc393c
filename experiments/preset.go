package experiments

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// Table1PresetName is the preset that reruns MEM1's Table 1 settings.
const Table1PresetName = "Reproduce MEM1 Table 1"

// Table1Objectives and Table1Policies are the preset's grid (MEM1, arXiv
// 2506.15841, Table 1 reports 2, 8 and 16 objectives; 1 and 4 fill in the curve).
var (
	Table1Objectives = []int{1, 2, 4, 8, 16}
	Table1Policies   = []string{"mem1", "full"}
)

// TruncateModel is the instruct model of MEM1's "truncate" rows (Table 1:
// Qwen2.5-7B-Instruct run with MEM1's prompt and pruning).
const TruncateModel = "Qwen/Qwen2.5-7B-Instruct"

// TruncateTemplateName is the stored template TruncatePreset picks: MEM1's
// training prompt imported under this name (`mem1lab template import
// mem1-prompt.txt --name mem1-train`).
const TruncateTemplateName = "mem1-train"

// TruncatePreset returns base set up as the paper's "truncate" rows: an
// instruct model (TruncateModel, unless base already names a model other than
// the released checkpoint) through the consolidating pipeline — policy mem1,
// completions mode (the Qwen prefix with an open assistant turn) — on MEM1's
// training prompt (TemplateName = TruncateTemplateName, template file
// cleared), with MEM1's sampling (temperature 0.01, top_p 0.95, 1024 tokens).
// The caller clears TemplateName when no such template is stored.
func TruncatePreset(base RunConfig) RunConfig {
	c := base
	if c.Model == "" || strings.Contains(c.Model, "Mem-Lab/") {
		c.Model = TruncateModel
	}
	c.Policy, c.Policies, c.Mode = core.PolicyMEM1, nil, ModeCompletions
	c.Template, c.TemplateName, c.TemplateSHA256, c.TemplateText = "", TruncateTemplateName, "", ""
	c.Temperature, c.TopP, c.MaxTokens = 0.01, 0.95, 1024
	if c.Name == "" || strings.HasPrefix(c.Name, "MEM1 truncate") {
		c.Name = "MEM1 truncate · " + c.Model
	}
	return c
}

// DefaultPresetTasks is the preset's tasks per setting.
const DefaultPresetTasks = 100

// Table1Preset returns one RunConfig per setting of the Table 1 grid, objectives
// ascending, mem1 before full at each count. Everything but the grid comes from
// base (endpoint, model, mode, dataset, sampling, concurrency…); tasks ≤ 0 means
// DefaultPresetTasks; MaxTurns is set explicitly to MEM1's limit for the count
// (core.DefaultMaxTurns: 6 up to 4 objectives, 20 beyond); each setting is named
// "MEM1 Table 1 · POLICY n=N".
func Table1Preset(base RunConfig, tasks int) []RunConfig {
	if tasks <= 0 {
		tasks = DefaultPresetTasks
	}
	var out []RunConfig
	for _, n := range Table1Objectives {
		for _, p := range Table1Policies {
			c := base
			c.Objectives, c.Policy, c.Tasks = n, p, tasks
			c.MaxTurns = core.DefaultMaxTurns(n)
			c.Name = fmt.Sprintf("MEM1 Table 1 · %s n=%d", p, n)
			out = append(out, c)
		}
	}
	return out
}

// Table1Grid is the Table 1 grid as one experiment: base with
// ObjectivesGrid = Table1Objectives and Policies = Table1Policies, tasks per
// setting (≤ 0 = DefaultPresetTasks), MaxTurns 0 so each setting gets MEM1's
// limit for its count (6 up to 4 objectives, 20 beyond), named "MEM1 Table 1".
// Its plan has the same ten settings as Table1Preset, in one experiment that
// Runs, Rollouts and Charts list once.
func Table1Grid(base RunConfig, tasks int) RunConfig {
	if tasks <= 0 {
		tasks = DefaultPresetTasks
	}
	c := base
	c.Name = "MEM1 Table 1"
	c.Objectives, c.ObjectivesGrid = Table1Objectives[0], append([]int(nil), Table1Objectives...)
	c.Policy, c.Policies = Table1Policies[0], append([]string(nil), Table1Policies...)
	c.Tasks, c.MaxTurns = tasks, 0
	return c
}

// SettingRunner runs one experiment (*Runner satisfies it).
type SettingRunner interface {
	Run(ctx context.Context, cfg RunConfig, progress func(Progress)) (Summary, error)
}

// RunSettings runs cfgs one after the other with r. progress (may be nil) gets the
// setting's index with each of its progress reports; done (may be nil) is called
// after each setting with its summary and error. A setting that fails does not
// stop the others; a cancelled ctx does. It returns the summaries of the settings
// that ran (Experiment 0 for one that could not start) and their errors joined,
// each prefixed with the setting's name.
func RunSettings(ctx context.Context, r SettingRunner, cfgs []RunConfig,
	progress func(setting int, p Progress), done func(setting int, s Summary, err error)) ([]Summary, error) {
	var sums []Summary
	var errs []error
	for i, c := range cfgs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		var pf func(Progress)
		if progress != nil {
			i := i
			pf = func(p Progress) { progress(i, p) }
		}
		s, err := r.Run(ctx, c, pf)
		sums = append(sums, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
		if done != nil {
			done(i, s, err)
		}
	}
	return sums, errors.Join(errs...)
}
