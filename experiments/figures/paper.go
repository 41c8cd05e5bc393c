package figures

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/mem1lab/mem1lab/assets"
)

// Citation is drawn on every figure that shows the paper overlay.
const Citation = "Dashed: MEM1 Table 1 (Zhou et al., arXiv:2506.15841)"

// PaperRow is one entry of MEM1's Table 1 (assets.MEM1Table1CSV): EM and F1 are
// summed over objectives and averaged over tasks; PeakTokens (± PeakTokensSD)
// in tokens; TimeS (± TimeSD) seconds per trajectory on one H200 with vLLM;
// Collapsed marks entries the paper flags as collapsed.
type PaperRow struct {
	System       string
	Objectives   int
	EM, F1       float64
	PeakTokens   float64
	PeakTokensSD float64
	TimeS        float64
	TimeSD       float64
	Collapsed    bool
}

var (
	paperOnce sync.Once
	paperRows []PaperRow
	paperErr  error
)

// PaperTable1 returns the embedded Table 1 rows in file order. A malformed
// embedded file is an error naming its line.
func PaperTable1() ([]PaperRow, error) {
	paperOnce.Do(func() {
		paperRows, paperErr = ParsePaperTable(bytes.NewReader(assets.MEM1Table1CSV), "mem1-table1.csv")
	})
	return paperRows, paperErr
}

// ParsePaperTable reads a Table 1 CSV with the header system, objectives, em,
// f1, peak_tokens, peak_tokens_sd, time_s, time_s_sd, collapsed. Errors are
// "name:line: reason".
func ParsePaperTable(r io.Reader, name string) ([]PaperRow, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s:1: %w", name, err)
	}
	want := []string{"system", "objectives", "em", "f1", "peak_tokens", "peak_tokens_sd", "time_s", "time_s_sd", "collapsed"}
	if strings.Join(head, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("%s:1: header %q, want %q", name, strings.Join(head, ","), strings.Join(want, ","))
	}
	var out []PaperRow
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		var p PaperRow
		p.System = rec[0]
		if p.Objectives, err = strconv.Atoi(rec[1]); err != nil {
			return nil, fmt.Errorf("%s:%d: objectives: %w", name, line, err)
		}
		for i, dst := range []*float64{&p.EM, &p.F1, &p.PeakTokens, &p.PeakTokensSD, &p.TimeS, &p.TimeSD} {
			if *dst, err = strconv.ParseFloat(rec[2+i], 64); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", name, line, want[2+i], err)
			}
		}
		if p.Collapsed, err = strconv.ParseBool(rec[8]); err != nil {
			return nil, fmt.Errorf("%s:%d: collapsed: %w", name, line, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// paperSystems groups rows by system in first-seen order.
func paperSystems(rows []PaperRow) (names []string, by map[string][]PaperRow) {
	by = map[string][]PaperRow{}
	for _, r := range rows {
		if _, ok := by[r.System]; !ok {
			names = append(names, r.System)
		}
		by[r.System] = append(by[r.System], r)
	}
	return names, by
}

// Citation2 is drawn on every WebShop figure that shows the paper overlay.
const Citation2 = "Paper: MEM1 Table 2, WebShop (Zhou et al., arXiv:2506.15841)"

// FakeRewardNote is added to the caption of every chart of an experiment
// played on mem1lab's fake WebShop server.
const FakeRewardNote = "fake WebShop: reward without the product-type term, not comparable with the paper"

// WebShopPaperRow is one WebShop entry of MEM1's Table 2
// (assets.MEM1Table2CSV): Reward is the mean final reward ×100; PeakTokens
// and Dependency in tokens (the paper prints ×10³ and ×10⁶); TimeS seconds
// per trajectory.
type WebShopPaperRow struct {
	System     string
	Reward     float64
	PeakTokens float64
	Dependency float64
	TimeS      float64
}

var (
	paper2Once sync.Once
	paper2Rows []WebShopPaperRow
	paper2Err  error
)

// PaperTable2 returns the embedded Table 2 (WebShop) rows in file order. A
// malformed embedded file is an error naming its line.
func PaperTable2() ([]WebShopPaperRow, error) {
	paper2Once.Do(func() {
		paper2Rows, paper2Err = ParsePaperTable2(bytes.NewReader(assets.MEM1Table2CSV), "mem1-table2.csv")
	})
	return paper2Rows, paper2Err
}

// ParsePaperTable2 reads a Table 2 CSV: '#' comment lines, then the header
// system, reward, peak_tokens, dependency, time_s and one row per system.
// Errors are "name:line: reason" (a wrong header, a wrong field count, a
// field that is not a non-negative number, a reward above 100, no rows).
func ParsePaperTable2(r io.Reader, name string) ([]WebShopPaperRow, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	want := []string{"system", "reward", "peak_tokens", "dependency", "time_s"}
	lineOf := func(err error) int {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return pe.Line
		}
		l, _ := cr.FieldPos(0)
		return l
	}
	head, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s:1: no header", name)
		}
		return nil, fmt.Errorf("%s:%d: %w", name, lineOf(err), err)
	}
	if strings.Join(head, ",") != strings.Join(want, ",") {
		l, _ := cr.FieldPos(0)
		return nil, fmt.Errorf("%s:%d: header %q, want %q", name, l, strings.Join(head, ","), strings.Join(want, ","))
	}
	var out []WebShopPaperRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, lineOf(err), err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(want) {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d (%s)", name, line, len(rec), len(want), strings.Join(want, ", "))
		}
		p := WebShopPaperRow{System: strings.TrimSpace(rec[0])}
		if p.System == "" {
			return nil, fmt.Errorf("%s:%d: empty system", name, line)
		}
		for i, dst := range []*float64{&p.Reward, &p.PeakTokens, &p.Dependency, &p.TimeS} {
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[1+i]), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("%s:%d: %s %q: want a non-negative number", name, line, want[1+i], rec[1+i])
			}
			*dst = v
		}
		if p.Reward > 100 {
			return nil, fmt.Errorf("%s:%d: reward %g: want 0..100 (final reward ×100)", name, line, p.Reward)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:2: no rows", name)
	}
	return out, nil
}
