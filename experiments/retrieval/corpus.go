package retrieval

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/mem1lab/mem1lab/storage"
)

// GenerateCorpus writes a qa-bundle folder at outDir with n passages for scale
// tests: outDir/unified/corpus.jsonl holds every passage of the bundle at
// bundleDir (so every question keeps its gold passages) followed by synthetic
// passages "gen-0000001", … up to n in all, and outDir/unified/questions.jsonl
// is a copy of the bundle's questions. A synthetic passage draws its length
// (in words) from a random real passage and each word independently from all
// words of the real corpus (so its vocabulary and word frequencies are the
// bundle's); its title is one to three words drawn the same way. The output
// depends only on the bundle and seed. Errors: unreadable bundle files, n
// smaller than the bundle's passage count, a write failure.
func GenerateCorpus(bundleDir, outDir string, n int, seed uint64) error {
	src := filepath.Join(bundleDir, filepath.FromSlash(storage.BundleCorpus))
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Join(outDir, "unified"), 0o755); err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	tmp := filepath.Join(outDir, filepath.FromSlash(storage.BundleCorpus)) + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(out, 1<<20)
	var words []string
	var lengths []int
	real := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		data := sc.Bytes()
		if len(strings.TrimSpace(string(data))) == 0 {
			continue
		}
		var p struct{ Text string }
		if err := json.Unmarshal(data, &p); err != nil {
			out.Close()
			return fmt.Errorf("%s:%d: %w", src, line, err)
		}
		ws := strings.Fields(p.Text)
		words = append(words, ws...)
		lengths = append(lengths, len(ws))
		w.Write(data)
		w.WriteByte('\n')
		real++
	}
	if err := sc.Err(); err != nil {
		out.Close()
		return fmt.Errorf("retrieval: generate corpus: read %s: %w", src, err)
	}
	if len(words) == 0 || n < real {
		out.Close()
		return fmt.Errorf("retrieval: generate corpus: %d passages asked, the bundle alone has %d (%d words)", n, real, len(words))
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	enc := json.NewEncoder(w)
	var text strings.Builder
	for i := 1; i <= n-real; i++ {
		text.Reset()
		for j, m := 0, max(1, lengths[rng.IntN(len(lengths))]); j < m; j++ {
			if j > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[rng.IntN(len(words))])
		}
		tw := make([]string, 1+rng.IntN(3))
		for j := range tw {
			tw[j] = words[rng.IntN(len(words))]
		}
		rec := struct {
			ID       string   `json:"id"`
			Title    string   `json:"title"`
			Text     string   `json:"text"`
			Datasets []string `json:"datasets"`
		}{fmt.Sprintf("gen-%07d", i), strings.Join(tw, " "), text.String(), []string{}}
		if err := enc.Encode(&rec); err != nil {
			out.Close()
			return fmt.Errorf("retrieval: generate corpus: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	if err := copyFile(filepath.Join(bundleDir, filepath.FromSlash(storage.BundleQuestions)),
		filepath.Join(outDir, filepath.FromSlash(storage.BundleQuestions))); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(outDir, filepath.FromSlash(storage.BundleCorpus)))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("retrieval: generate corpus: %w", err)
	}
	return errors.Join(out.Close())
}
