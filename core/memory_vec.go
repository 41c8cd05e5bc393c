package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// Cosine is the cosine similarity of a and b, in [-1, 1]; 0 when either is
// the zero vector. Errors: vectors of different lengths.
func Cosine(a, b []float64) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("cosine: vectors of length %d and %d", len(a), len(b))
	}
	na, nb := floats.Norm(a, 2), floats.Norm(b, 2)
	if na == 0 || nb == 0 {
		return 0, nil
	}
	return floats.Dot(a, b) / (na * nb), nil
}

// Ranked is one stored vector's place in a ranking: its index in the list
// ranked and its cosine similarity to the query.
type Ranked struct {
	Index int
	Score float64
}

// RankCosine ranks vecs by cosine similarity to query, best first (ties by
// index), and returns the top k (all when k ≤ 0 or k > len(vecs)). The
// similarities are one matrix–vector product of the row-normalised vectors
// with the normalised query (gonum mat). Zero vectors score 0. Errors: a
// vector whose length differs from the query's.
func RankCosine(query []float64, vecs [][]float64, k int) ([]Ranked, error) {
	if len(vecs) == 0 {
		return nil, nil
	}
	d := len(query)
	if d == 0 {
		return nil, errors.New("rank: empty query vector")
	}
	data := make([]float64, 0, len(vecs)*d)
	for i, v := range vecs {
		if len(v) != d {
			return nil, fmt.Errorf("rank: vector %d has length %d, the query %d", i, len(v), d)
		}
		row := append([]float64(nil), v...)
		if n := floats.Norm(row, 2); n > 0 {
			floats.Scale(1/n, row)
		}
		data = append(data, row...)
	}
	q := append([]float64(nil), query...)
	if n := floats.Norm(q, 2); n > 0 {
		floats.Scale(1/n, q)
	}
	var scores mat.VecDense
	scores.MulVec(mat.NewDense(len(vecs), d, data), mat.NewVecDense(d, q))
	out := make([]Ranked, len(vecs))
	for i := range out {
		out[i] = Ranked{Index: i, Score: scores.AtVec(i)}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score > out[j].Score })
	if k > 0 && k < len(out) {
		out = out[:k]
	}
	return out, nil
}

// decodeJSONReply decodes the first JSON object in a model's reply into v:
// text before the first '{' and after the last '}' (a code fence, a preamble)
// is ignored. Errors say what was wrong, quoting the start of the reply.
func decodeJSONReply(reply string, v any) error {
	i, j := strings.Index(reply, "{"), strings.LastIndex(reply, "}")
	if i < 0 || j < i {
		return fmt.Errorf("malformed JSON reply: no JSON object in %q", clip(reply, 80))
	}
	if err := json.Unmarshal([]byte(reply[i:j+1]), v); err != nil {
		return fmt.Errorf("malformed JSON reply: %v in %q", err, clip(reply, 80))
	}
	return nil
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// TruncateTokens cuts s at a word boundary so that EstimateTokens(s) ≤ n
// (n ≤ 0: no limit). It reports whether anything was cut.
func TruncateTokens(s string, n int) (string, bool) {
	if n <= 0 || EstimateTokens(s) <= n {
		return s, false
	}
	words := strings.Fields(s)
	lo, hi := 0, len(words)
	for lo < hi { // largest prefix that fits
		mid := (lo + hi + 1) / 2
		if EstimateTokens(strings.Join(words[:mid], " ")) <= n {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return strings.Join(words[:lo], " "), true
}
