package views

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/mem1lab/mem1lab/storage"
)

// Trace's live poller is driven by the tests themselves.
func init() { livePollInterval = 0 }

// The fake store's browser: the same filters as storage.BrowseRollouts over the
// fake's rollouts, with a substring word match standing in for FTS5.

func (s *fakeStore) Experiment(_ context.Context, id int64) (storage.ExperimentRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.exps {
		if e.ID == id {
			return e, nil
		}
	}
	return storage.ExperimentRow{}, fmt.Errorf("no experiment %d", id)
}

func (s *fakeStore) allRows() []storage.BrowseRow {
	var out []storage.BrowseRow
	for expID, rs := range s.rollouts {
		name := ""
		for _, e := range s.exps {
			if e.ID == expID {
				name = e.Name
			}
		}
		for _, r := range rs {
			b := storage.BrowseRow{RolloutRow: r, Experiment: name}
			if d, ok := s.details[r.ID]; ok {
				b.CountMismatch = d.Score.CountMismatch
			}
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *fakeStore) textOf(id int64) string {
	d, ok := s.details[id]
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, o := range d.Task.Objectives {
		b.WriteString(o.Question + " ")
	}
	for _, t := range d.Turns {
		b.WriteString(t.InternalState + " " + t.Query + " " + t.Answer + " ")
	}
	return strings.ToLower(b.String())
}

func (s *fakeStore) BrowseRollouts(_ context.Context, q storage.RolloutQuery) (storage.RolloutPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.browses = append(s.browses, q)
	var rows []storage.BrowseRow
	for _, r := range s.allRows() {
		switch {
		case q.ExperimentID != 0 && r.ExperimentID != q.ExperimentID,
			q.Policy != "" && r.Policy != q.Policy,
			q.Model != "" && r.Model != q.Model,
			q.Dataset != "" && r.Dataset != q.Dataset,
			q.Status != "" && r.Status != q.Status,
			q.WrongOnly && !(r.Status == storage.StatusDone && r.EM < float64(r.Objectives)),
			q.CountMismatch && !r.CountMismatch,
			q.Failed && r.Status != storage.StatusFailed:
			continue
		}
		text := s.textOf(r.ID)
		ok := true
		for _, w := range strings.Fields(strings.ToLower(q.Text)) {
			if !strings.Contains(text, w) {
				ok = false
			}
		}
		if ok {
			rows = append(rows, r)
		}
	}
	key := func(r storage.BrowseRow) float64 {
		switch q.Sort {
		case storage.SortEM, storage.SortCorrect:
			return r.EM
		case storage.SortPeakTokens:
			return float64(r.PeakTokens)
		case storage.SortTurns:
			return float64(r.Turns)
		}
		return float64(r.ID)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		ki, kj := key(rows[i]), key(rows[j])
		if ki == kj {
			ki, kj = float64(rows[i].ID), float64(rows[j].ID)
		}
		if q.Desc {
			return ki > kj
		}
		return ki < kj
	})
	page := storage.RolloutPage{Total: len(rows)}
	lim := q.Limit
	if lim == 0 {
		lim = storage.DefaultPageSize
	}
	if q.Offset < len(rows) {
		rows = rows[q.Offset:]
		if lim > 0 && len(rows) > lim {
			rows = rows[:lim]
		}
		page.Rows = rows
	}
	return page, nil
}

func (s *fakeStore) Facets(context.Context) (storage.RolloutFacets, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := func(f func(storage.BrowseRow) string) []string {
		m := map[string]bool{}
		for _, r := range s.allRows() {
			m[f(r)] = true
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	return storage.RolloutFacets{
		Policies: set(func(r storage.BrowseRow) string { return r.Policy }),
		Models:   set(func(r storage.BrowseRow) string { return r.Model }),
		Datasets: set(func(r storage.BrowseRow) string { return r.Dataset }),
		Statuses: set(func(r storage.BrowseRow) string { return r.Status }),
	}, nil
}

func (s *fakeStore) SameTaskRollouts(_ context.Context, id int64) ([]storage.RolloutRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.details[id]
	if !ok {
		return nil, fmt.Errorf("no rollout %d", id)
	}
	var out []storage.RolloutRow
	for _, r := range s.allRows() {
		if r.TaskKey == d.TaskKey {
			out = append(out, r.RolloutRow)
		}
	}
	return out, nil
}

func (s *fakeStore) PairRollouts(_ context.Context, a, b int64) ([]storage.RolloutPair, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.RolloutPair
	for _, ra := range s.rollouts[a] {
		da := s.details[ra.ID]
		for _, rb := range s.rollouts[b] {
			db := s.details[rb.ID]
			if ra.TaskKey == rb.TaskKey {
				out = append(out, storage.RolloutPair{TaskKey: ra.TaskKey, Task: da.Task, A: ra, B: rb, ScoreA: da.Score, ScoreB: db.Score})
			}
		}
	}
	return out, nil
}
