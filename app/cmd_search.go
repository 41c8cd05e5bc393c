package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/retrieval"
	"github.com/mem1lab/mem1lab/storage"
)

// searchReport is `mem1lab search --json` output. Times are milliseconds.
type searchReport struct {
	Retriever string         `json:"retriever"`
	K         int            `json:"k"`
	Passages  int            `json:"corpus_passages"`
	OpenMS    float64        `json:"open_ms"`
	Queries   []searchResult `json:"queries"`
	// Latency percentiles over Queries (nearest rank).
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
}

type searchResult struct {
	Query    string         `json:"query"`
	MS       float64        `json:"ms"`
	Passages []core.Passage `json:"passages"`
}

func (c *CLI) cmdSearch(ctx context.Context, args []string) error {
	fs := c.flags("search")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	kind := fs.String("retriever", retrieval.KindBM25, "retriever: "+strings.Join(retrieval.Kinds, ", "))
	k := fs.Int("k", 3, "passages per query")
	questions := fs.Int("questions", 0, "also run the first N stored questions as queries (timings summarised)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	query := strings.Join(fs.Args(), " ")
	if strings.TrimSpace(query) == "" && *questions <= 0 {
		return errors.New("nothing to search: give a query (mem1lab search [flags] WORDS…) or --questions N")
	}
	if *k <= 0 {
		return fmt.Errorf("--k %d: want ≥ 1", *k)
	}
	st, err := openExisting(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	env, closer, err := retrieval.Open(ctx, *kind, st)
	if err != nil {
		return err
	}
	defer closer.Close()
	rep := searchReport{Retriever: *kind, K: *k, OpenMS: ms(time.Since(start))}
	if rep.Retriever == "" {
		rep.Retriever = retrieval.KindBM25
	}
	if rep.Passages, err = st.CountPassages(ctx); err != nil {
		return err
	}
	var queries []string
	if strings.TrimSpace(query) != "" {
		queries = append(queries, query)
	}
	if *questions > 0 {
		qs, err := allQuestions(ctx, st, *questions)
		if err != nil {
			return err
		}
		for _, q := range qs {
			queries = append(queries, q.Question)
		}
	}
	lat := make([]float64, 0, len(queries))
	for _, q := range queries {
		t0 := time.Now()
		ps, err := env.Search(ctx, q, *k)
		if err != nil {
			return err
		}
		d := ms(time.Since(t0))
		lat = append(lat, d)
		rep.Queries = append(rep.Queries, searchResult{Query: q, MS: d, Passages: nonNilPassages(ps)})
	}
	rep.P50MS, rep.P95MS = percentile(lat, 50), percentile(lat, 95)
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(c.Stdout, "retriever %s over %d passages, opened in %.1f ms\n", rep.Retriever, rep.Passages, rep.OpenMS)
	if strings.TrimSpace(query) != "" {
		r := rep.Queries[0]
		fmt.Fprintf(c.Stdout, "query %q: %d passages in %.2f ms\n", r.Query, len(r.Passages), r.MS)
		tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "rank\tscore\tid\ttitle\ttext")
		for _, p := range r.Passages {
			fmt.Fprintf(tw, "%d\t%.3f\t%s\t%s\t%s\n", p.Rank, p.Score, p.ID, p.Title, snippet(p.Text, 60))
		}
		tw.Flush()
	}
	fmt.Fprintf(c.Stdout, "%d queries: p50 %.2f ms, p95 %.2f ms\n", len(lat), rep.P50MS, rep.P95MS)
	return nil
}

// buildBleve opens (building when missing or stale) the bleve index of st and
// says what it did.
func (c *CLI) buildBleve(ctx context.Context, st *storage.Store) error {
	b, err := retrieval.OpenBleve(ctx, st, retrieval.BleveOptions{})
	if err != nil {
		return err
	}
	defer b.Close()
	if built := b.Built(); built.Passages > 0 {
		fmt.Fprintf(c.Stdout, "built the bleve index of %d passages in %s (%.0f passages/s)\n",
			built.Passages, built.Elapsed.Round(time.Millisecond), built.Rate())
	} else {
		fmt.Fprintln(c.Stdout, "the bleve index is up to date")
	}
	return nil
}

// allQuestions returns up to n stored questions, datasets in name order.
func allQuestions(ctx context.Context, st *storage.Store, n int) ([]storage.Question, error) {
	infos, err := st.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.Question
	for _, d := range infos {
		if len(out) >= n {
			break
		}
		qs, err := st.Questions(ctx, d.Name, 0, n-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

func nonNilPassages(ps []core.Passage) []core.Passage {
	if ps == nil {
		return []core.Passage{}
	}
	return ps
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank p-th percentile of xs (0 when empty).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func snippet(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n]) + "…"
}
