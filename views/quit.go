package views

import (
	"fmt"
	"log"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
)

// runStarted and runEnded count the runs this UI plays (New experiment's Run,
// Runs' Resume run, the Table 1 preset), for quitting safely.
func (u *UI) runStarted() {
	u.runMu.Lock()
	u.inflight++
	u.runMu.Unlock()
	u.runWG.Add(1)
}

func (u *UI) runEnded() {
	u.runMu.Lock()
	u.inflight--
	u.runMu.Unlock()
	u.runWG.Done()
}

// RunsInFlight is how many runs this UI is playing now.
func (u *UI) RunsInFlight() int {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	return u.inflight
}

// ConfirmQuit is the window's close and File › Quit handler: with no run in
// flight it calls quit at once; otherwise it asks first and, when the user
// agrees, stops the runs cleanly (StopRuns) before calling quit.
func (u *UI) ConfirmQuit(quit func()) {
	n := u.RunsInFlight()
	w := u.deps.Window
	if n == 0 || w == nil {
		if n > 0 {
			u.StopRuns(quit)
			return
		}
		quit()
		return
	}
	what := "A run is"
	if n > 1 {
		what = fmt.Sprintf("%d runs are", n)
	}
	log.Printf("mem1lab: quit asked with %d run(s) in flight; asking first", n)
	d := dialog.NewConfirm("Quit while running?",
		what+" in progress. Quitting stops it cleanly: every finished turn is kept, and Runs offers "+
			"Resume run the next time you start mem1lab (or run `mem1lab resume`).",
		func(ok bool) {
			u.quitDialog = nil
			if ok {
				log.Printf("mem1lab: stopping %d run(s) before quitting", u.RunsInFlight())
				u.StopRuns(quit)
			}
		}, w)
	d.SetConfirmText("Stop and quit")
	d.SetDismissText("Keep running")
	u.quitDialog = d
	d.Show()
}

// quitKey answers the open quit dialog from the keyboard: Return or Enter is
// "Stop and quit", Escape "Keep running". It reports whether it used the key
// (false when no quit dialog is open).
func (u *UI) quitKey(ev *fyne.KeyEvent) bool {
	d := u.quitDialog
	if d == nil {
		return false
	}
	switch ev.Name {
	case fyne.KeyReturn, fyne.KeyEnter:
		d.Confirm()
	case fyne.KeyEscape:
		d.Hide()
	default:
		return false
	}
	return true
}

// stopPatience is how long StopRuns waits for the runs to return.
var stopPatience = 20 * time.Second

// StopRuns cancels every run this UI plays. Each stops at its next turn
// boundary, keeps what it stored and records itself as cancelled (resumable);
// done is called on the UI thread once all of them have returned, or after
// stopPatience if one has not (it is logged; what it stored is kept, and the
// next start offers Resume for it, its owner being gone), so quitting never
// hangs on a run that does not stop.
func (u *UI) StopRuns(done func()) {
	u.stop()
	go func() {
		stopped := make(chan struct{})
		go func() {
			u.runWG.Wait()
			close(stopped)
		}()
		t := time.NewTimer(stopPatience)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			log.Printf("mem1lab: %d run(s) did not stop within %s; quitting anyway (stored turns are kept; Runs offers Resume next time)",
				u.RunsInFlight(), stopPatience)
		}
		u.do(done)
	}()
}
