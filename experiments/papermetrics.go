package experiments

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

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
	tagsOf := map[string]core.Tags{}
	n := 0
	for _, b := range todo {
		tags, ok := tagsOf[b.ConfigJSON]
		if !ok {
			var cfg RunConfig
			if json.Unmarshal([]byte(b.ConfigJSON), &cfg) == nil {
				tags = cfg.CoreTags()
			} else {
				tags = core.DefaultTags()
			}
			tagsOf[b.ConfigJSON] = tags
		}
		turns, err := st.Turns(ctx, b.ID)
		if err != nil {
			return n, err
		}
		res := withPaperFigures(storage.RolloutResult{}, b.Task, turns, tags, b.Policy)
		if err := st.SetPaperMetrics(ctx, b.ID, *res.Paper, res.RequestPeakTokens, res.TokenSource); err != nil {
			return n, fmt.Errorf("backfill paper metrics: %w", err)
		}
		n++
	}
	return n, nil
}
