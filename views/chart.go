package views

import (
	"image"
	"image/color"
	"strconv"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Bar colours of the context-size strip.
var (
	barColor       = color.NRGBA{R: 0x6f, G: 0x8f, B: 0xc0, A: 0xff}
	highlightColor = color.NRGBA{R: 0xe6, G: 0x7e, B: 0x22, A: 0xff}
)

// tokenChart is a bar chart of context tokens (context + generation) per turn with
// the current turn highlighted, drawn by gonum/plot into a canvas.Raster.
type tokenChart struct {
	raster *canvas.Raster

	mu      sync.Mutex
	tokens  []int
	current int     // -1 = none
	yTop    float64 // tallest bar the y-axis must hold (0 = this chart's own)
	slots   int     // turns the x-axis holds (0 = this chart's own)
}

// setScale fixes the axes for charts drawn side by side: yTop tokens at the
// top of the y-axis (before headroom), slots turns along the x-axis.
func (c *tokenChart) setScale(yTop float64, slots int) {
	c.mu.Lock()
	c.yTop, c.slots = yTop, slots
	c.mu.Unlock()
	c.raster.Refresh()
}

func newTokenChart() *tokenChart {
	c := &tokenChart{current: -1}
	c.raster = canvas.NewRaster(c.render)
	c.raster.SetMinSize(fyne.NewSize(240, 150))
	return c
}

func (c *tokenChart) setTokens(tokens []int) {
	c.mu.Lock()
	c.tokens = append([]int(nil), tokens...)
	c.mu.Unlock()
	c.raster.Refresh()
}

func (c *tokenChart) setCurrent(i int) {
	c.mu.Lock()
	changed := c.current != i
	c.current = i
	c.mu.Unlock()
	if changed {
		c.raster.Refresh()
	}
}

// render draws the chart at w×h pixels.
func (c *tokenChart) render(w, h int) image.Image {
	c.mu.Lock()
	tokens := append([]int(nil), c.tokens...)
	cur, yTop, slots := c.current, c.yTop, c.slots
	c.mu.Unlock()
	scale := 1.0
	if sw := c.raster.Size().Width; sw > 0 && w > 0 {
		scale = float64(w) / float64(sw)
	}
	return drawTokenChart(tokens, cur, w, h, scale, theme.Color(theme.ColorNameForeground), yTop, slots)
}

// drawTokenChart renders the bars of tokens (one per turn, turn 1 first) with bar
// cur highlighted, at w×h pixels; scale is pixels per Fyne unit so text keeps its
// size on high-density screens. An empty series gives a blank image.
func drawTokenChart(tokens []int, cur, w, h int, scale float64, fg color.Color, yTop float64, slots int) image.Image {
	if w <= 0 || h <= 0 {
		return image.NewNRGBA(image.Rect(0, 0, 1, 1))
	}
	if len(tokens) == 0 {
		return image.NewNRGBA(image.Rect(0, 0, w, h))
	}
	p := tokenPlot(tokens, cur, w, scale, fg, yTop, slots)
	if p == nil {
		return image.NewNRGBA(image.Rect(0, 0, w, h))
	}
	dpi := 72 * scale
	idpi := max(1, int(dpi+0.5))
	size := func(px int) vg.Length { return vg.Length(float64(px)/float64(idpi)) * vg.Inch }
	cv := vgimg.NewWith(vgimg.UseWH(size(w), size(h)), vgimg.UseDPI(idpi), vgimg.UseBackgroundColor(color.Transparent))
	p.Draw(draw.New(cv))
	return cv.Image()
}

// tokenPlot lays out the bars: one slot per turn from -0.5 to slots-0.5 so
// the first and last bars are whole, and the y-axis from 0 to 1.1 × the
// tallest bar (or yTop when larger). nil when the bars cannot be made.
func tokenPlot(tokens []int, cur, w int, scale float64, fg color.Color, yTop float64, slots int) *plot.Plot {
	p := plot.New()
	p.BackgroundColor = color.Transparent
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Color = fg
		a.Label.TextStyle.Color = fg
		a.Tick.Label.Color = fg
		a.Tick.Color = fg
	}
	p.Y.Min = 0
	p.Y.Label.Text = "tokens"
	p.X.Label.Text = "turn"

	rest := make(plotter.Values, len(tokens))
	hi := make(plotter.Values, len(tokens))
	names := make([]string, len(tokens))
	slots = max(slots, len(tokens))
	for i, t := range tokens {
		yTop = max(yTop, float64(t))
		if i == cur {
			hi[i] = float64(t)
		} else {
			rest[i] = float64(t)
		}
		names[i] = strconv.Itoa(i + 1)
	}
	for i := len(tokens); i < slots; i++ {
		names = append(names, strconv.Itoa(i+1))
	}
	// Bar width in points: about 60% of each turn's slot.
	widthPt := float64(w) / scale
	barW := vg.Length(widthPt * 0.6 / float64(slots+1))
	barW = max(1, min(barW, 40))
	for _, s := range []struct {
		v   plotter.Values
		col color.Color
	}{{rest, barColor}, {hi, highlightColor}} {
		b, err := plotter.NewBarChart(s.v, barW)
		if err != nil {
			return nil
		}
		b.Color = s.col
		b.LineStyle.Width = 0
		p.Add(b)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(slots)-0.5
	p.Y.Min, p.Y.Max = 0, yTop*1.1 // headroom above the tallest bar
	if p.Y.Max <= 0 {
		p.Y.Max = 1
	}
	return p
}
