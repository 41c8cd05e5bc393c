package views

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// previewQuestions is how many questions the Data screen previews.
const previewQuestions = 50

// searchTopK is how many passages the BM25 box shows, MEM1's top-3.
const searchTopK = 3

// dataStore is what the Data screen reads.
type dataStore interface {
	// Datasets lists the imported datasets with their question and passage counts.
	Datasets(ctx context.Context) ([]storage.DatasetInfo, error)
	// Questions returns up to limit questions of dataset in import order, skipping offset.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
	// Search runs a BM25 query over the corpus and returns the best k passages, best first.
	Search(ctx context.Context, query string, k int) ([]core.Passage, error)
}

// dataPanel is the Data screen: dataset counts, a question preview and a BM25 box.
type dataPanel struct {
	u        *UI
	st       dataStore
	content  fyne.CanvasObject
	datasets []storage.DatasetInfo
	counts   *dataTable

	questions    []storage.Question
	preview      *dataTable
	previewTitle *widget.Label
	question     *widget.Label // the selected question, whole
	previewSeq   int

	query    *widget.Entry
	searchBt *widget.Button
	results  *widget.RichText
	passages []core.Passage
	status   *widget.Label
}

func newDataPanel(u *UI) *dataPanel {
	p := &dataPanel{u: u, st: u.deps.Store}
	p.counts = newDataTable([]string{"Dataset", "Questions", "Passages"}, []float32{100, 90, 90})
	p.counts.onSelect = func(row int) { p.selectDataset(p.datasets[row].Name) }

	p.preview = newDataTable([]string{"#", "Question", "Gold answers"}, []float32{50, 520, 260})
	p.question = widget.NewLabel("")
	p.question.Wrapping = fyne.TextWrapWord
	p.preview.onSelect = func(row int) {
		if row >= 0 && row < len(p.questions) {
			q := p.questions[row]
			p.question.SetText(fmt.Sprintf("#%d %s\nGold: %s", q.Seq, q.Question, strings.Join(q.Golden, " | ")))
		}
	}
	p.previewTitle = widget.NewLabel("Select a dataset to preview its questions.")
	p.previewTitle.Wrapping = fyne.TextWrapWord

	p.query = widget.NewEntry()
	p.query.SetPlaceHolder("BM25 query, e.g. who wrote the iliad")
	p.query.OnSubmitted = func(string) { p.search() }
	p.searchBt = widget.NewButton("Search", p.search)
	p.results = widget.NewRichText()
	p.results.Wrapping = fyne.TextWrapWord
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord

	left := container.NewBorder(widget.NewLabelWithStyle("Datasets", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		nil, nil, nil, p.counts.table)
	right := container.NewBorder(p.previewTitle, p.question, nil, nil, p.preview.table)
	top := container.NewHSplit(left, right)
	top.Offset = 0.3
	u.rememberSplit("data.top", top)
	searchBar := container.NewBorder(nil, nil, widget.NewLabel("Try a BM25 query"), p.searchBt, p.query)
	bottom := container.NewBorder(searchBar, nil, nil, nil, container.NewVScroll(p.results))
	split := container.NewVSplit(top, bottom)
	split.Offset = 0.6
	u.rememberSplit("data.split", split)
	p.content = container.NewBorder(nil, p.status, nil, nil, split)
	u.follow(ScreenData, p.reload)
	return p
}

// reload fetches the dataset counts.
func (p *dataPanel) reload() {
	background(p.u, func(ctx context.Context) ([]storage.DatasetInfo, error) {
		return p.st.Datasets(ctx)
	}, func(ds []storage.DatasetInfo, err error) {
		if err != nil {
			p.status.SetText("Could not list datasets: " + err.Error())
			return
		}
		p.datasets = ds
		rows := make([][]string, len(ds))
		for i, d := range ds {
			rows[i] = []string{d.Name, strconv.Itoa(d.Questions), strconv.Itoa(d.Passages)}
		}
		p.counts.setRows(rows)
		if len(ds) == 0 {
			p.status.SetText("No datasets imported yet (mem1lab import).")
			return
		}
		p.status.SetText("")
		if p.previewSeq == 0 {
			p.counts.selectRow(0) // preview the first dataset until the user picks one
		}
	})
}

// selectDataset loads the first questions of dataset into the preview.
func (p *dataPanel) selectDataset(name string) {
	p.previewSeq++
	seq := p.previewSeq
	p.previewTitle.SetText("Loading " + name + "…")
	background(p.u, func(ctx context.Context) ([]storage.Question, error) {
		return p.st.Questions(ctx, name, 0, previewQuestions)
	}, func(qs []storage.Question, err error) {
		if seq != p.previewSeq {
			return // a later selection won
		}
		if err != nil {
			p.previewTitle.SetText(fmt.Sprintf("Could not load questions of %s: %v", name, err))
			return
		}
		p.questions = qs
		rows := make([][]string, len(qs))
		for i, q := range qs {
			rows[i] = []string{strconv.Itoa(q.Seq), q.Question, strings.Join(q.Golden, " | ")}
		}
		p.preview.setRows(rows)
		p.previewTitle.SetText(fmt.Sprintf("%s: first %s (select one to read it whole)", name, plural(len(qs), "question", "questions")))
		p.question.SetText("")
	})
}

// search runs the query box through the store's BM25 search.
func (p *dataPanel) search() {
	q := strings.TrimSpace(p.query.Text)
	if q == "" {
		p.status.SetText("Type a query to search the corpus.")
		return
	}
	p.searchBt.Disable()
	p.status.SetText("Searching…")
	background(p.u, func(ctx context.Context) ([]core.Passage, error) {
		return p.st.Search(ctx, q, searchTopK)
	}, func(ps []core.Passage, err error) {
		p.searchBt.Enable()
		if err != nil {
			p.status.SetText(fmt.Sprintf("Search %q failed: %v", q, err))
			return
		}
		p.passages = ps
		p.results.Segments = passageSegments(ps)
		p.results.Refresh()
		p.status.SetText(fmt.Sprintf("%d passages for %q", len(ps), q))
	})
}

// formatPassage renders passage k (1-based) as the environment shows it to the
// agent: `Doc k(Title: "T") text`.
func formatPassage(k int, ps core.Passage) string {
	return fmt.Sprintf("Doc %d(Title: \"%s\") %s", k, ps.Title, ps.Text)
}

func passageSegments(ps []core.Passage) []widget.RichTextSegment {
	if len(ps) == 0 {
		return []widget.RichTextSegment{&widget.TextSegment{Text: "No passage matched.", Style: widget.RichTextStyleParagraph}}
	}
	segs := make([]widget.RichTextSegment, 0, len(ps))
	for i, x := range ps {
		segs = append(segs, &widget.TextSegment{Text: formatPassage(i+1, x), Style: monoParagraph})
	}
	return segs
}

// monoParagraph is a monospace paragraph style for trace text.
var monoParagraph = widget.RichTextStyle{
	Inline:    false,
	SizeName:  widget.RichTextStyleCodeBlock.SizeName,
	ColorName: widget.RichTextStyleCodeBlock.ColorName,
	TextStyle: fyne.TextStyle{Monospace: true},
}
