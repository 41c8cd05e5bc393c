package app

import (
	"os"
	"path/filepath"
)

// DefaultDBPath is the store the GUI and the CLI share when --db is not given:
// $MEM1LAB_DB, else $XDG_DATA_HOME/mem1lab/mem1lab.db, else
// ~/.local/share/mem1lab/mem1lab.db (the XDG base-directory default).
func DefaultDBPath() string {
	if p := os.Getenv("MEM1LAB_DB"); p != "" {
		return p
	}
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "mem1lab", "mem1lab.db")
}

// DefaultBundleDir finds the shared QA bundle: $MEM1LAB_BUNDLE, else
// ../shared/data/qa-bundle beside the working directory or beside the executable's
// folder. It returns "" when none of them holds unified/questions.jsonl.
func DefaultBundleDir() string {
	var candidates []string
	if p := os.Getenv("MEM1LAB_BUNDLE"); p != "" {
		candidates = append(candidates, p)
	}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Join(wd, "..", "shared", "data", "qa-bundle"))
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		candidates = append(candidates,
			filepath.Join(dir, "..", "..", "shared", "data", "qa-bundle"),
			filepath.Join(dir, "..", "shared", "data", "qa-bundle"))
	}
	for _, c := range candidates {
		if isBundle(c) {
			return filepath.Clean(c)
		}
	}
	return ""
}

func isBundle(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "unified", "questions.jsonl"))
	return err == nil && !st.IsDir()
}
