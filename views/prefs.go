package views

import (
	"fmt"
	"path/filepath"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"
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

// saveDialog is a file save dialog that opens in the folder a file was last
// saved in and remembers the folder of the file saved. save writes the file and
// returns what to report; the report names the file's full path.
func (u *UI) saveDialog(name string, save func(fyne.URIWriteCloser) error, report func(string)) {
	w := u.deps.Window
	if w == nil {
		report("Saving needs the app window")
		return
	}
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil {
			report("Save: " + err.Error())
			return
		}
		if wc == nil {
			return // cancelled
		}
		path := wc.URI().Path()
		if err := save(wc); err != nil {
			report(fmt.Sprintf("Could not save %s: %v", path, err))
			return
		}
		u.rememberExportDir(path)
		report("Saved " + path)
	}, w)
	d.SetFileName(name)
	if dir := u.exportDir(); dir != nil {
		d.SetLocation(dir)
	}
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
