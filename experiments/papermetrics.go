package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// importSource is the "source" of the config of experiments that
// ImportTrajectories wrote.
const importSource = "mem1-reference-jsonl"

// importedPaperFigures recomputes the figures of a rollout that
// ImportTrajectories stored before figures were stored on import. The import
// keeps each line's r{i} as the response, and the reference's t{i} is that
// response's think block (core.ReferenceTurns splits it off); an older import
// stored t{i}+r{i}, which is recognised by the think block standing twice at
// the start. The information block is rebuilt with the default tags (older
// imports trimmed its newlines, so counts can differ by a token from the file's).
func importedPaperFigures(task core.Task, turns []core.Turn, policy string) storage.RolloutResult {
	tags := core.DefaultTags()
	// The reference's t{i} is the think block of r{i}, which the import keeps
	// as the response: core.ReferenceTurns splits it off again. Every imported
	// line had an r{i}.
	ref := core.ReferenceTurns(turns, tags)
	for i, tu := range turns {
		ref[i].HasR, ref[i].R = true, tu.Response
		blk := "<" + tags.Think + ">" + tu.InternalState + "</" + tags.Think + ">"
		if rest, ok := strings.CutPrefix(tu.Response, blk); ok && strings.HasPrefix(rest, blk) {
			ref[i].T, ref[i].R = blk, rest // an older import stored t{i}+r{i}
		}
	}
	gold := make([][]string, len(task.Objectives))
	for i, ob := range task.Objectives {
		gold[i] = ob.Gold
	}
	ans, ok := core.RolloutAnswer(turns)
	em := core.LenientExactMatch(ans, ok, gold)
	pm := core.ComputePaperMetrics(ref, em, core.PaperRuleFull(policy), nil, core.O200kTokens)
	res := storage.RolloutResult{Paper: &pm}
	res.RequestPeakTokens, res.TokenSource = core.RequestPeak(turns)
	return res
}

// withPaperFigures fills res's paper figures from a rollout's turns: MEM1
// eval.py's peak tokens, dependency and compression ratio under the rule of
// the policy (core.RolloutPaperMetrics, o200k counts), and the request peak
// with its token source (core.RequestPeak).
func withPaperFigures(res storage.RolloutResult, task core.Task, turns []core.Turn, tags core.Tags, policy string) storage.RolloutResult {
	pm := core.RolloutPaperMetrics(task, turns, tags, policy)
	res.Paper = &pm
	res.RequestPeakTokens, res.TokenSource = core.RequestPeak(turns)
	if res.TokenSource == "" {
		res.TokenSource = core.TokenSourceEstimate // no turns: nothing was served
	}
	return res
}

// PaperBackfillStore is what BackfillPaperMetrics needs of the store.
type PaperBackfillStore interface {
	PaperBackfills(ctx context.Context) ([]storage.PaperBackfill, error)
	Turns(ctx context.Context, rolloutID int64) ([]core.Turn, error)
	SetPaperMetrics(ctx context.Context, id int64, m core.PaperMetrics, requestPeak int, source string) error
}

// BackfillPaperMetrics computes the paper figures of every finished rollout
// stored without them (stores from before they existed) from its stored turns,
// with the tags of its experiment's config, and writes them; nothing is rerun.
// It returns how many rollouts it filled. An experiment config that does not
// decode falls back to the default tags. Store errors end it.
func BackfillPaperMetrics(ctx context.Context, st PaperBackfillStore) (int, error) {
	todo, err := st.PaperBackfills(ctx)
	if err != nil {
		return 0, err
	}
	type expInfo struct {
		tags     core.Tags
		imported bool
	}
	infoOf := map[string]expInfo{}
	n := 0
	for _, b := range todo {
		info, ok := infoOf[b.ConfigJSON]
		if !ok {
			var cfg struct {
				RunConfig
				Source string `json:"source"`
			}
			info.tags = core.DefaultTags()
			if json.Unmarshal([]byte(b.ConfigJSON), &cfg) == nil {
				info.tags = cfg.CoreTags()
				info.imported = cfg.Source == importSource
			}
			infoOf[b.ConfigJSON] = info
		}
		turns, err := st.Turns(ctx, b.ID)
		if err != nil {
			return n, err
		}
		var res storage.RolloutResult
		if info.imported {
			res = importedPaperFigures(b.Task, turns, b.Policy)
		} else {
			res = withPaperFigures(storage.RolloutResult{}, b.Task, turns, info.tags, b.Policy)
		}
		if err := st.SetPaperMetrics(ctx, b.ID, *res.Paper, res.RequestPeakTokens, res.TokenSource); err != nil {
			return n, fmt.Errorf("backfill paper metrics: %w", err)
		}
		n++
	}
	return n, nil
}
