package core

import (
	"fmt"
	"strings"
	"unicode"
)

// Scoring schemes.
const (
	// SchemeMEM1 is MEM1's reference evaluation (Mem1/inference/eval.py,
	// compute_score and preprocess_text, github.com/MIT-MI/MEM1):
	// normalisation lower-cases, turns every ASCII punctuation character into a
	// space, collapses whitespace and keeps articles; F1 is over token SETS.
	SchemeMEM1 = "mem1"
	// SchemeSQuAD is the SQuAD v1.1 official evaluation (evaluate-v1.1.py,
	// normalize_answer and f1_score, Rajpurkar et al. 2016): normalisation
	// lower-cases, deletes ASCII punctuation, drops the articles a/an/the and
	// collapses whitespace; F1 is over token multisets (bag of words).
	SchemeSQuAD = "squad"
)

// Schemes lists the scoring schemes ScoreTrajectory accepts.
func Schemes() []string { return []string{SchemeMEM1, SchemeSQuAD} }

func knownScheme(scheme string) bool {
	return scheme == SchemeMEM1 || scheme == SchemeSQuAD
}

// assistantMarker: eval.py scores only the text after the last occurrence.
const assistantMarker = "<|im_start|>assistant"

// TrajectoryText is the text a rollout is scored on: the turns' responses
// concatenated in order, nothing between them.
func TrajectoryText(turns []Turn) string {
	var b strings.Builder
	for _, t := range turns {
		b.WriteString(t.Response)
	}
	return b.String()
}

// EvalPyTurns is how many turns Mem1/inference/eval.py reads of a trajectory
// (its loops run over i in range(10)).
const EvalPyTurns = 10

// EvalPyText is the text Mem1/inference/eval.py scores for a rollout: for each
// of the first EvalPyTurns turns, t{i} + r{i} + i{i} as
// Mem1/inference/generate_rollout.py stores them — t{i} is
// "<think>" + the first think block's content stripped + "</think>" ("" when
// the response has no complete think block), r{i} the response, i{i} the
// information block carried after it ("" when none).
func EvalPyText(turns []Turn, tags Tags) string {
	var b strings.Builder
	for i, t := range turns {
		if i >= EvalPyTurns {
			break
		}
		if st, ok := firstBlock(t.Response, tags.Think, 0); ok {
			b.WriteString(openTag(tags.Think) + pyStrip(st) + closeTag(tags.Think))
		}
		b.WriteString(t.Response)
		if t.Information != "" {
			b.WriteString(tags.InformationBlock(t.Information))
		}
	}
	return b.String()
}

// WithEvalPy returns s with EvalPy set to eval.py's score of the rollout —
// scheme SchemeMEM1 (eval.py's compute_score) over EvalPyText(turns, tags) —
// when its EM or F1 differ from s's, and nil otherwise.
func WithEvalPy(s Score, turns []Turn, gold [][]string, tags Tags) Score {
	s.EvalPy = nil
	text := EvalPyText(turns, tags)
	ev, err := ScoreTrajectoryWith(SchemeMEM1, text, gold, tags)
	if err != nil {
		return s
	}
	if ev.EM != s.EM || ev.F1 != s.F1 {
		a, _ := FinalAnswerWith(SchemeMEM1, text, tags)
		s.EvalPy = &EvalPyScore{EM: ev.EM, F1: ev.F1, Answer: a}
	}
	return s
}

// FinalAnswer returns the content (trimmed) of the last complete answer block
// of trajectory, found as ScoreTrajectory finds it. ok is false for an unknown
// scheme, when the answer tags are unbalanced, or when there is no answer.
func FinalAnswer(scheme, trajectory string) (answer string, ok bool) {
	return FinalAnswerWith(scheme, trajectory, DefaultTags())
}

// FinalAnswerWith is FinalAnswer with the answer tag named by tags.Answer.
func FinalAnswerWith(scheme, trajectory string, tags Tags) (string, bool) {
	if !knownScheme(scheme) {
		return "", false
	}
	a, st := lastAnswer(trajectory, tags.Answer)
	return a, st == answerFound
}

// ScoreTrajectory scores a trajectory against the gold aliases of each
// objective (gold[i] are the accepted answers of objective i). Both schemes
// follow MEM1's eval.py compute_score for finding the answer:
//  1. only the text after the last "<|im_start|>assistant" counts;
//  2. tags match ASCII case-insensitively (eval.py lower-cases the text first);
//  3. if the counts of "<answer>" and "</answer>" differ, or an opening tag has
//     no closing tag after it, the score is 0 (Score.Unbalanced);
//  4. the answer is the content of the last complete <answer>…</answer>; none
//     scores 0 (Score.NoAnswer);
//  5. it is split on ';' and each part normalised; if the number of parts is not
//     len(gold) the score is 0 (Score.CountMismatch);
//  6. objective i scores EM 1 when its normalised part equals a normalised alias
//     of gold[i], and F1 the best F1 over the aliases (0 for an empty side);
//  7. Score.EM and Score.F1 are sums over objectives: 0..len(gold).
//
// Normalisation and F1 depend on the scheme (see SchemeMEM1, SchemeSQuAD).
// Unicode lower-casing uses Go's simple case mapping, which differs from
// Python's str.lower only for a handful of characters such as 'İ'.
// An unknown scheme is an error.
func ScoreTrajectory(scheme, trajectory string, gold [][]string) (Score, error) {
	return ScoreTrajectoryWith(scheme, trajectory, gold, DefaultTags())
}

// ScoreTrajectoryWith is ScoreTrajectory with the answer tag named by
// tags.Answer.
func ScoreTrajectoryWith(scheme, trajectory string, gold [][]string, tags Tags) (Score, error) {
	if !knownScheme(scheme) {
		return Score{}, fmt.Errorf("unknown scoring scheme %q (known: %s)", scheme, strings.Join(Schemes(), ", "))
	}
	// Every objective gets an entry, scored 0 unless the answer list is usable,
	// so views and exports can show per-objective marks for any trajectory.
	s := Score{Scheme: scheme, PerObjective: make([]ObjectiveScore, len(gold))}
	content, st := lastAnswer(trajectory, tags.Answer)
	switch st {
	case answerUnbalanced:
		s.Unbalanced = true
		return s, nil
	case answerMissing:
		s.NoAnswer = true
		return s, nil
	}
	parts := strings.Split(content, ";")
	s.Answers = make([]string, len(parts))
	for i, p := range parts {
		s.Answers[i] = pyStrip(p)
	}
	if len(parts) != len(gold) {
		// MEM1 scores the whole task 0; the answers are still shown by position.
		s.CountMismatch = true
		for i := range s.PerObjective {
			if i < len(s.Answers) {
				s.PerObjective[i].Answer = s.Answers[i]
			}
		}
		return s, nil
	}
	for i, aliases := range gold {
		em, f1 := scoreObjective(scheme, parts[i], aliases)
		s.PerObjective[i] = ObjectiveScore{Answer: s.Answers[i], EM: em, F1: f1}
		s.EM += em
		s.F1 += f1
	}
	return s, nil
}

// Normalize returns answer normalised under scheme (see SchemeMEM1,
// SchemeSQuAD); an unknown scheme is an error.
func Normalize(scheme, answer string) (string, error) {
	switch scheme {
	case SchemeMEM1:
		return normalizeMEM1(answer), nil
	case SchemeSQuAD:
		return normalizeSQuAD(answer), nil
	}
	return "", fmt.Errorf("unknown scoring scheme %q", scheme)
}

func scoreObjective(scheme, answer string, aliases []string) (em, f1 float64) {
	norm := normalizeMEM1
	tokenF1 := setF1
	if scheme == SchemeSQuAD {
		norm, tokenF1 = normalizeSQuAD, bagF1
	}
	pred := norm(answer)
	for _, g := range aliases {
		gn := norm(g)
		if pred == gn {
			em = 1
		}
		f1 = max(f1, tokenF1(pyFields(pred), pyFields(gn)))
	}
	return em, f1
}

type answerStatus int

const (
	answerFound answerStatus = iota
	answerMissing
	answerUnbalanced
)

// lastAnswer applies steps 1–4 of ScoreTrajectory and returns the trimmed
// content of the last complete answer block.
func lastAnswer(traj, tag string) (string, answerStatus) {
	folded := asciiLower(traj)
	if i := strings.LastIndex(folded, asciiLower(assistantMarker)); i >= 0 {
		cut := i + len(assistantMarker)
		traj, folded = traj[cut:], folded[cut:]
	}
	open, cls := asciiLower(openTag(tag)), asciiLower(closeTag(tag))
	if strings.Count(folded, open) != strings.Count(folded, cls) {
		return "", answerUnbalanced
	}
	// Every opening tag, scanning from the end of the previous block, must have
	// a closing tag after it.
	pos := 0
	for {
		i := indexFrom(folded, open, pos)
		if i < 0 {
			break
		}
		j := indexFrom(folded, cls, i)
		if j < 0 {
			return "", answerUnbalanced
		}
		pos = j + 1
	}
	// Non-overlapping lazy matches, left to right; keep the last.
	found, last := false, ""
	pos = 0
	for {
		i := indexFrom(folded, open, pos)
		if i < 0 {
			break
		}
		start := i + len(open)
		j := indexFrom(folded, cls, start)
		if j < 0 {
			break
		}
		found, last = true, traj[start:j]
		pos = j + len(cls)
	}
	if !found {
		return "", answerMissing
	}
	return pyStrip(last), answerFound
}

// asciiLower lower-cases ASCII letters only, keeping byte offsets.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// isPunct reports Python's string.punctuation: the 32 ASCII punctuation marks.
func isPunct(r rune) bool {
	return r < 128 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)
}

// isSpace matches Python's str.isspace (also what `\s` and str.split use):
// Unicode white space plus the ASCII separators U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f
}

// pyStrip trims like Python's str.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, isSpace) }

// pyFields splits like Python's str.split().
func pyFields(s string) []string { return strings.FieldsFunc(s, isSpace) }

// normalizeMEM1 is eval.py preprocess_text: lower-case, each ASCII punctuation
// character becomes a space, whitespace runs become one space, trimmed.
func normalizeMEM1(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if isPunct(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(pyFields(s), " ")
}

// normalizeSQuAD is SQuAD v1.1 normalize_answer: lower-case, delete ASCII
// punctuation, replace the whole words a/an/the by a space (word characters as
// in Python's \w: letters, numbers and '_'), collapse whitespace.
func normalizeSQuAD(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if isPunct(r) {
			return -1
		}
		return r
	}, s)
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !isWordRune(rs[i]) {
			b.WriteRune(rs[i])
			i++
			continue
		}
		j := i
		for j < len(rs) && isWordRune(rs[j]) {
			j++
		}
		switch w := string(rs[i:j]); w {
		case "a", "an", "the":
			b.WriteByte(' ')
		default:
			b.WriteString(w)
		}
		i = j
	}
	return strings.Join(pyFields(b.String()), " ")
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// setF1 is eval.py's token F1: over distinct tokens; 0 when either side is
// empty or nothing is shared.
func setF1(pred, gold []string) float64 {
	ps, gs := toSet(pred), toSet(gold)
	if len(ps) == 0 || len(gs) == 0 {
		return 0
	}
	common := 0
	for t := range ps {
		if gs[t] {
			common++
		}
	}
	return f1From(common, len(ps), len(gs))
}

// bagF1 is SQuAD's token F1: shared tokens counted with multiplicity.
func bagF1(pred, gold []string) float64 {
	counts := map[string]int{}
	for _, t := range gold {
		counts[t]++
	}
	common := 0
	for _, t := range pred {
		if counts[t] > 0 {
			counts[t]--
			common++
		}
	}
	return f1From(common, len(pred), len(gold))
}

func f1From(common, npred, ngold int) float64 {
	if common == 0 {
		return 0
	}
	p := float64(common) / float64(npred)
	r := float64(common) / float64(ngold)
	return 2 * p * r / (p + r)
}

func toSet(ts []string) map[string]bool {
	m := make(map[string]bool, len(ts))
	for _, t := range ts {
		m[t] = true
	}
	return m
}
