//go:build smoke

package app

// The Xvfb smoke test: builds the desktop (OpenGL) binary, opens it on a fresh
// store under a virtual X server, and checks that the window appears, the shared
// QA bundle is imported on first start, and the window draws something. Run it
// with `go test -tags smoke,sqlite_fts5 -run TestSmoke ./app` (make test does);
// it needs Xvfb, xdotool and ImageMagick's import (scripts/deps.sh screenshot).

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

func TestSmokeDesktopWindowUnderXvfb(t *testing.T) {
	for _, tool := range []string{"Xvfb", "xdotool", "import"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is missing: run scripts/deps.sh screenshot", tool)
	}
	bundle, err := filepath.Abs(filepath.Join("..", "..", "shared", "data", "qa-bundle"))
	require.NoError(t, err)
	require.DirExists(t, bundle)

	dir := t.TempDir()
	bin := filepath.Join(dir, "mem1lab")
	build := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", bin, "..")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "building the desktop binary")

	// Xvfb picks a free display itself and writes its number to fd 3
	// (-displayfd), so the test never guesses one that another X server takes.
	displayR, displayW, err := os.Pipe()
	require.NoError(t, err)
	xvfb := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	xvfb.ExtraFiles = []*os.File{displayW}
	require.NoError(t, xvfb.Start())
	_ = displayW.Close()
	t.Cleanup(func() { _ = xvfb.Process.Kill(); _ = xvfb.Wait() })
	var num string
	_, err = fmt.Fscan(displayR, &num)
	_ = displayR.Close()
	require.NoError(t, err, "reading the display Xvfb chose")
	display := ":" + num
	env := append(os.Environ(), "DISPLAY="+display,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	eventually(t, 10*time.Second, "Xvfb to start", func() bool {
		c := exec.Command("xdotool", "getdisplaygeometry")
		c.Env = env
		return c.Run() == nil
	})

	db := filepath.Join(dir, "lab.db")
	var appLog strings.Builder
	gui := exec.Command(bin, "--db", db, "--bundle", bundle, "--width", "1200", "--height", "760")
	gui.Env, gui.Stdout, gui.Stderr = env, &appLog, &appLog
	require.NoError(t, gui.Start())
	// exited is closed once the app has exited (exitErr then holds how), so
	// any number of waiters see it: the clean-up after an early exit too.
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = gui.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = gui.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = gui.Process.Kill()
			<-exited
		}
	})

	var window string
	eventually(t, 60*time.Second, "the mem1lab window", func() bool {
		select {
		case <-exited:
			t.Fatalf("the app exited early (%v):\n%s", exitErr, appLog.String())
		default:
		}
		c := exec.Command("xdotool", "search", "--name", "^mem1lab")
		c.Env = env
		out, _ := c.Output()
		window = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		return window != ""
	})

	// First start imports the bundle in the background; the store says when.
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	eventually(t, 120*time.Second, "the bundle import", func() bool {
		n, err := st.CountQuestions(context.Background(), "")
		return err == nil && n == 4280
	})
	time.Sleep(2 * time.Second) // let the Data screen redraw with the counts

	shot := filepath.Join(dir, "window.png")
	c := exec.Command("import", "-window", window, shot)
	c.Env = env
	out, err := c.CombinedOutput()
	require.NoError(t, err, "import: %s", out)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.GreaterOrEqual(t, img.Bounds().Dx(), 600, "window width")
	require.Greater(t, distinctColours(img), 50, "the window draws text and widgets, not a blank surface")
	if keep := os.Getenv("MEM1LAB_SMOKE_PNG"); keep != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(keep, data, 0o644)
	}
}

// eventually polls cond (an external process's state, which no channel can
// signal) until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func distinctColours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return len(seen)
}
