package views

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// dataTable is a read-only table of strings with a header row. Tapping a cell
// selects its row; double-tapping a cell activates the row (e.g. opens it).
// From the keyboard, with the table focused: arrows move the highlight, Space
// selects its row, Return (or Enter) selects and activates it.
type dataTable struct {
	headers    []string
	widths     []float32 // column widths, each at least its header's
	rows       [][]string
	selected   int // -1 when none
	table      *keyTable
	onSelect   func(row int)
	onActivate func(row int)
}

// setHeader renames column col (e.g. "Mean EM" to "Mean reward" for a
// WebShop experiment), widening it when the new header needs more room.
func (d *dataTable) setHeader(col int, text string) {
	if col < 0 || col >= len(d.headers) || d.headers[col] == text {
		return
	}
	d.headers = append([]string(nil), d.headers...) // callers may share the slice they passed in
	d.headers[col] = text
	if w := headerWidth(text); w > d.widths[col] {
		d.widths[col] = w
		d.table.SetColumnWidth(col, w)
	}
	d.table.Refresh()
}

func newDataTable(headers []string, widths []float32) *dataTable {
	d := &dataTable{headers: headers, selected: -1}
	d.table = &keyTable{data: d}
	d.table.ExtendBaseWidget(d.table) // before Table's own, so TypedKey below is used
	d.table.ShowHeaderRow = true
	d.table.Length, d.table.CreateCell, d.table.UpdateCell =
		func() (int, int) { return len(d.rows), len(d.headers) },
		func() fyne.CanvasObject { return newTableCell(d) },
		func(id widget.TableCellID, o fyne.CanvasObject) {
			c := o.(*tableCell)
			c.id = id
			text := ""
			if id.Row >= 0 && id.Row < len(d.rows) && id.Col < len(d.rows[id.Row]) {
				text = d.rows[id.Row][id.Col]
			}
			c.SetText(text)
		}
	d.table.ShowHeaderColumn = false
	d.table.CreateHeader = func() fyne.CanvasObject {
		l := widget.NewLabel("header")
		l.TextStyle.Bold = true
		l.Truncation = fyne.TextTruncateEllipsis
		return l
	}
	d.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		text := ""
		if id.Row < 0 && id.Col >= 0 && id.Col < len(d.headers) {
			text = d.headers[id.Col]
		}
		o.(*widget.Label).SetText(text)
	}
	d.table.OnSelected = func(id widget.TableCellID) {
		if id.Row < 0 || id.Row >= len(d.rows) {
			return
		}
		d.selected = id.Row
		if d.onSelect != nil {
			d.onSelect(id.Row)
		}
	}
	d.widths = make([]float32, len(widths))
	for i, w := range widths {
		if i < len(headers) {
			w = max(w, headerWidth(headers[i]))
		}
		d.widths[i] = w
		d.table.SetColumnWidth(i, w)
	}
	return d
}

// headerWidth is the width a column needs to show its bold header whole, with
// room for a sort arrow, so no header reads "Objecti…".
func headerWidth(h string) float32 {
	return textWidth(h+" ▼", fyne.TextStyle{Bold: true})
}

// textWidth is the width of a table cell showing s whole (text and padding).
func textWidth(s string, style fyne.TextStyle) float32 {
	return fyne.MeasureText(s, theme.TextSize(), style).Width + 2*theme.InnerPadding() + 2
}

// setRows replaces the content and clears the selection.
func (d *dataTable) setRows(rows [][]string) {
	d.rows = rows
	d.selected = -1
	d.table.UnselectAll()
	d.table.Refresh()
}

// selectRow selects row as if it had been tapped. The first row is shown at
// the top: Table.Select scrolls by the header's height too when the table is
// small or not laid out yet, which hid the row under the header.
func (d *dataTable) selectRow(row int) {
	d.table.Select(widget.TableCellID{Row: row, Col: 0})
	if row == 0 {
		d.table.ScrollToTop()
	}
}

// tableCell is a truncating label that forwards taps to its table.
type tableCell struct {
	widget.Label
	id    widget.TableCellID
	table *dataTable
}

func newTableCell(t *dataTable) *tableCell {
	c := &tableCell{table: t}
	c.Truncation = fyne.TextTruncateEllipsis
	c.ExtendBaseWidget(c)
	return c
}

// Tapped selects the cell's row.
func (c *tableCell) Tapped(*fyne.PointEvent) {
	c.table.table.Select(widget.TableCellID{Row: c.id.Row, Col: c.id.Col})
}

// DoubleTapped selects and activates the cell's row.
func (c *tableCell) DoubleTapped(*fyne.PointEvent) {
	c.Tapped(nil)
	if c.table.onActivate != nil && c.id.Row >= 0 && c.id.Row < len(c.table.rows) {
		c.table.onActivate(c.id.Row)
	}
}

// keyTable is the widget.Table of a dataTable, with Return and Enter
// activating the highlighted row (Space, the Table's own key, only selects it).
type keyTable struct {
	widget.Table
	data *dataTable
}

// TypedKey activates the highlighted row on Return or Enter; every other key
// is the Table's.
func (t *keyTable) TypedKey(ev *fyne.KeyEvent) {
	if ev.Name != fyne.KeyReturn && ev.Name != fyne.KeyEnter {
		t.Table.TypedKey(ev)
		return
	}
	t.Table.TypedKey(&fyne.KeyEvent{Name: fyne.KeySpace}) // selects the highlighted cell's row
	if d := t.data; d.onActivate != nil && d.selected >= 0 && d.selected < len(d.rows) {
		d.onActivate(d.selected)
	}
}
