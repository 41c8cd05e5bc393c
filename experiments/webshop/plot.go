package webshop

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/mem1lab/mem1lab/storage"
)

// RewardPoint is the mean final reward ×100 of the finished rollouts of one
// series (policy / model) that used Turns turns, over N rollouts.
type RewardPoint struct {
	Series string
	Turns  int
	Reward float64
	N      int
}

// RewardByTurns groups experiment expID's done rollouts by series
// ("policy / model") and turns used, and averages their reward ×100 (the
// reward is the rollout's EM column, as the runner stores it). Points are
// ordered by series, then turns.
func RewardByTurns(ctx context.Context, st *storage.Store, expID int64) ([]RewardPoint, error) {
	rows, err := st.Rollouts(ctx, expID)
	if err != nil {
		return nil, err
	}
	type key struct {
		s string
		t int
	}
	sums := map[key]*RewardPoint{}
	for _, r := range rows {
		if r.Status != storage.StatusDone {
			continue
		}
		k := key{r.Policy + " / " + r.Model, r.Turns}
		p := sums[k]
		if p == nil {
			p = &RewardPoint{Series: k.s, Turns: k.t}
			sums[k] = p
		}
		p.Reward += r.EM * 100
		p.N++
	}
	out := make([]RewardPoint, 0, len(sums))
	for _, p := range sums {
		p.Reward /= float64(p.N)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Series != out[j].Series {
			return out[i].Series < out[j].Series
		}
		return out[i].Turns < out[j].Turns
	})
	return out, nil
}

// PlotRewardVsTurns draws points as one line per series (x: turns used,
// y: mean final reward ×100) and saves it to path (.svg, .png or .pdf,
// 12×8 cm). note, when not empty, is added under the title (e.g. the fake
// WebShop's reward caveat). Errors: no points, or the file cannot be written.
func PlotRewardVsTurns(points []RewardPoint, title, note, path string) error {
	if len(points) == 0 {
		return errors.New("webshop: no finished rollouts to plot")
	}
	p := plot.New()
	p.Title.Text = title
	if note != "" {
		p.Title.Text += "\n" + note
	}
	p.X.Label.Text = "turns used"
	p.Y.Label.Text = "final reward ×100"
	p.Y.Min, p.Y.Max = 0, 100
	p.Legend.Top = true
	palette := []color.Color{color.RGBA{0, 114, 178, 255}, color.RGBA{213, 94, 0, 255}, color.RGBA{0, 158, 115, 255}, color.RGBA{204, 121, 167, 255}}
	var series []string
	by := map[string]plotter.XYs{}
	for _, pt := range points {
		if _, ok := by[pt.Series]; !ok {
			series = append(series, pt.Series)
		}
		by[pt.Series] = append(by[pt.Series], plotter.XY{X: float64(pt.Turns), Y: pt.Reward})
	}
	for i, s := range series {
		l, pts, err := plotter.NewLinePoints(by[s])
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		l.Color, pts.Color = c, c
		pts.Shape = draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(s, l, pts)
	}
	if err := p.Save(12*vg.Centimeter, 8*vg.Centimeter, path); err != nil {
		return fmt.Errorf("webshop: plot %s: %w", path, err)
	}
	return nil
}
