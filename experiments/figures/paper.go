package figures

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
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
