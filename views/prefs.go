package views

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
	"fyne.io/fyne/v2/widget"
)

// Preference keys (fyne.Preferences of the app; nothing secret is kept there).
const (
	prefScreen       = "ui.screen"        // the screen shown last
	prefSplit        = "ui.split."        // + split name: its divider position, 0..1
	prefExportDir    = "ui.export_dir"    // the folder the last file was saved in
	prefWindowWidth  = "ui.window_width"  // the window's last size, in Fyne units
	prefWindowHeight = "ui.window_height" //
	prefEndpoint     = "run.endpoint"     // New experiment's last endpoint URL
	prefModel        = "run.model"        // and model
)

// rememberSplit restores split s's divider from the preferences and keeps it
// to be saved by SavePrefs.
func (u *UI) rememberSplit(name string, s *container.Split) {
	if u.prefs != nil {
		if v := u.prefs.FloatWithFallback(prefSplit+name, -1); v > 0 && v < 1 {
			s.Offset = v
		}
	}
	if u.splits == nil {
		u.splits = map[string]*container.Split{}
	}
	u.splits[name] = s
}

// SavePrefs keeps the split positions and the window size (zero = not known)
// for the next start. Call it on the UI thread before the window closes.
func (u *UI) SavePrefs(window fyne.Size) {
	if u.prefs == nil {
		return
	}
	for name, s := range u.splits {
		u.prefs.SetFloat(prefSplit+name, s.Offset)
	}
	if window.Width > 0 && window.Height > 0 {
		u.prefs.SetFloat(prefWindowWidth, float64(window.Width))
		u.prefs.SetFloat(prefWindowHeight, float64(window.Height))
	}
}

// LastWindowSize is the window size SavePrefs kept (false when none).
func (u *UI) LastWindowSize() (fyne.Size, bool) {
	if u.prefs == nil {
		return fyne.Size{}, false
	}
	w, h := u.prefs.FloatWithFallback(prefWindowWidth, 0), u.prefs.FloatWithFallback(prefWindowHeight, 0)
	if w < 200 || h < 200 {
		return fyne.Size{}, false
	}
	return fyne.NewSize(float32(w), float32(h)), true
}

// ShowLastScreen shows the screen shown when the app last closed (Data when none).
func (u *UI) ShowLastScreen() {
	if u.prefs == nil {
		return
	}
	if name := u.prefs.String(prefScreen); name != "" {
		_ = u.Show(name) // a screen since renamed is an error and changes nothing
	}
}

// saveDialog asks where to save name: a path field (a folder, a name, or a
// whole absolute path typed or pasted, taken as it is) filled with the folder a
// file was last saved in, and Browse… for the file chooser. save writes the
// file (and closes it); report gets "Saved <full path>" or why not. The folder
// of the file saved is remembered.
func (u *UI) saveDialog(name string, save func(fyne.URIWriteCloser) error, report func(string)) {
	u.askSavePath(name, func(wc fyne.URIWriteCloser) {
		path := wc.URI().Path()
		if err := save(wc); err != nil {
			report(fmt.Sprintf("Could not save %s: %v", path, err))
			return
		}
		report("Saved " + path)
	}, report)
}

// askSavePath shows the save dialog and hands the opened file to write (which
// must close it); failures go to report.
func (u *UI) askSavePath(name string, write func(fyne.URIWriteCloser), report func(string)) {
	w := u.deps.Window
	if w == nil {
		report("Saving needs the app window")
		return
	}
	dir := ""
	if d := u.exportDir(); d != nil {
		dir = d.Path()
	} else if home, err := os.UserHomeDir(); err == nil {
		dir = home
	}
	path := widget.NewEntry()
	path.SetText(filepath.Join(dir, name))
	open := func(p string) {
		p = strings.TrimSpace(p)
		if p == "" {
			report("Save: no file name given")
			return
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p) // a bare name goes to the folder shown
		}
		wc, err := storage.Writer(storage.NewFileURI(p))
		if err != nil {
			report(fmt.Sprintf("Could not save %s: %v", p, err))
			return
		}
		u.rememberExportDir(p)
		write(wc)
	}
	var d dialog.Dialog
	browse := widget.NewButton("Browse…", func() {
		d.Hide()
		fd := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
			switch {
			case err != nil:
				report("Save: " + err.Error())
			case wc != nil:
				u.rememberExportDir(wc.URI().Path())
				write(wc)
			}
		}, w)
		fd.SetFileName(filepath.Base(path.Text))
		if l := u.exportDir(); l != nil {
			fd.SetLocation(l)
		}
		fd.Show()
	})
	u.savePath = path
	d = dialog.NewForm("Save "+name, "Save", "Cancel",
		[]*widget.FormItem{widget.NewFormItem("File", container.NewBorder(nil, nil, nil, browse, path))},
		func(ok bool) {
			if ok {
				open(path.Text)
			}
		}, w)
	d.Resize(fyne.NewSize(640, 0))
	d.Show()
}

// rememberExportDir keeps the folder of the file at path for the next save dialog.
func (u *UI) rememberExportDir(path string) {
	if u.prefs != nil && path != "" {
		u.prefs.SetString(prefExportDir, filepath.Dir(path))
	}
}

// exportDir is the remembered export folder, nil when none or gone.
func (u *UI) exportDir() fyne.ListableURI {
	if u.prefs == nil {
		return nil
	}
	dir := u.prefs.String(prefExportDir)
	if dir == "" {
		return nil
	}
	l, err := storage.ListerForURI(storage.NewFileURI(dir))
	if err != nil {
		return nil
	}
	return l
}
