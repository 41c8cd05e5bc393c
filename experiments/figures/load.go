package figures

import (
	"context"
	"sort"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// Source is what Load reads (*storage.Store satisfies it).
type Source interface {
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
	EachTurnTokens(ctx context.Context, expIDs []int64, fn func(storage.TurnTokens) error) error
}

var _ Source = (*storage.Store)(nil)

// LoadOptions choose what Load reads.
type LoadOptions struct {
	// Dataset keeps only rollouts of this dataset ("" = all).
	Dataset string
	// ByModel groups by (model, policy, objectives); false pools models.
	ByModel bool
	// Curves also reads the per-turn token counts (the Context chart needs them;
	// they are streamed, one turn at a time).
	Curves bool
}

// Load reads the rollouts of the experiments ids and aggregates them
// (experiments.Aggregates), and with o.Curves the per-turn context curves. It
// also returns the datasets those experiments hold, sorted (for a filter menu).
// Data.Runs lists the finished rollouts; Data.WebShop is set when every
// rollout read is a WebShop episode. A selection holding both families is
// charted as QA: its WebShop rollouts are left out (Data.LeftOutWebShop
// counts them), since a final reward is not an EM and must not pool with
// one-objective QA groups.
func Load(ctx context.Context, st Source, ids []int64, o LoadOptions) (Data, []string, error) {
	var d Data
	var rows []storage.RolloutRow
	seen := map[string]bool{}
	for _, id := range ids {
		rs, err := st.Rollouts(ctx, id)
		if err != nil {
			return d, nil, err
		}
		for _, r := range rs {
			seen[r.Dataset] = true
			if o.Dataset == "" || r.Dataset == o.Dataset {
				rows = append(rows, r)
			}
		}
	}
	datasets := make([]string, 0, len(seen))
	for k := range seen {
		datasets = append(datasets, k)
	}
	sort.Strings(datasets)
	shop := 0
	for _, r := range rows {
		if r.Dataset == core.FamilyWebShop {
			shop++
		}
	}
	if shop > 0 && shop < len(rows) {
		qa := rows[:0:0]
		for _, r := range rows {
			if r.Dataset != core.FamilyWebShop {
				qa = append(qa, r)
			}
		}
		rows, d.LeftOutWebShop = qa, shop
	}
	d.Aggregates = experiments.Aggregates(rows, o.ByModel)
	d.WebShop = len(rows) > 0 && shop == len(rows)
	for _, r := range rows {
		if r.Status != storage.StatusDone {
			continue
		}
		rp := RunPoint{Model: r.Model, Policy: r.Policy, Turns: r.Turns, Score: r.EM}
		if !o.ByModel {
			rp.Model = ""
		}
		d.Runs = append(d.Runs, rp)
	}
	if o.Curves && len(ids) > 0 {
		b := experiments.NewCurveBuilder(o.ByModel)
		err := st.EachTurnTokens(ctx, ids, func(t storage.TurnTokens) error {
			if o.Dataset != "" && t.Dataset != o.Dataset || d.LeftOutWebShop > 0 && t.Dataset == core.FamilyWebShop {
				return nil
			}
			return b.Add(t)
		})
		if err != nil {
			return d, nil, err
		}
		d.Curves = b.Curves()
	}
	return d, datasets, nil
}
