package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		scheme, in, want string
	}{
		{SchemeMEM1, "The Beatles", "the beatles"},
		{SchemeSQuAD, "The Beatles", "beatles"},
		{SchemeMEM1, "U.S.A.", "u s a"},
		{SchemeSQuAD, "U.S.A.", "usa"},
		{SchemeMEM1, "Jean-Paul  Sartre!", "jean paul sartre"},
		{SchemeSQuAD, "Jean-Paul  Sartre!", "jeanpaul sartre"},
		{SchemeMEM1, "  An apple a day ", "an apple a day"},
		{SchemeSQuAD, "  An apple a day ", "apple day"},
		{SchemeSQuAD, "theatre anthem", "theatre anthem"},
		{SchemeSQuAD, "a_b the_c", "ab thec"},
		{SchemeMEM1, "Zürich\u00a0Café", "zürich café"},
		{SchemeMEM1, "a\x1cb", "a b"},
		{SchemeMEM1, "Café — Paris", "café — paris"},
		{SchemeSQuAD, "the—a", "—"},
		{SchemeMEM1, "", ""},
	}
	for _, c := range cases {
		t.Run(c.scheme+"/"+c.in, func(t *testing.T) {
			got, err := Normalize(c.scheme, c.in)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
	_, err := Normalize("bleu", "x")
	assert.Error(t, err)
}

func answerTraj(a string) string {
	return "<think>searching</think><search>q</search><think>done</think><answer>" + a + "</answer>"
}

func TestScoreTrajectory(t *testing.T) {
	cases := []struct {
		name    string
		scheme  string
		traj    string
		gold    [][]string
		em, f1  float64
		per     []ObjectiveScore
		answers []string
		flags   Score // only the flag fields are compared
	}{
		{
			name: "two exact", scheme: SchemeMEM1,
			traj: answerTraj("Paris; the Beatles"),
			gold: [][]string{{"Paris"}, {"Beatles", "The Beatles"}},
			em:   2, f1: 2,
			per:     []ObjectiveScore{{Answer: "Paris", EM: 1, F1: 1}, {Answer: "the Beatles", EM: 1, F1: 1}},
			answers: []string{"Paris", "the Beatles"},
		},
		{
			// mem1 keeps articles: {the, beatles} vs {beatles}: P=1/2, R=1, F1=2/3.
			name: "articles kept by mem1", scheme: SchemeMEM1,
			traj: answerTraj("the Beatles"), gold: [][]string{{"Beatles"}},
			em: 0, f1: 2.0 / 3,
			per:     []ObjectiveScore{{Answer: "the Beatles", EM: 0, F1: 2.0 / 3}},
			answers: []string{"the Beatles"},
		},
		{
			name: "articles dropped by squad", scheme: SchemeSQuAD,
			traj: answerTraj("the Beatles"), gold: [][]string{{"Beatles"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "the Beatles", EM: 1, F1: 1}},
			answers: []string{"the Beatles"},
		},
		{
			// mem1: "u s a" vs "usa" share nothing; squad deletes dots: "usa".
			name: "punctuation mem1", scheme: SchemeMEM1,
			traj: answerTraj("U.S.A."), gold: [][]string{{"USA"}},
			per:     []ObjectiveScore{{Answer: "U.S.A."}},
			answers: []string{"U.S.A."},
		},
		{
			name: "punctuation squad", scheme: SchemeSQuAD,
			traj: answerTraj("U.S.A."), gold: [][]string{{"USA"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "U.S.A.", EM: 1, F1: 1}},
			answers: []string{"U.S.A."},
		},
		{
			// {new,york,city} vs {new,york}: P=2/3, R=1 → 0.8; vs {york}: 0.5; vs {nyc}: 0.
			name: "best alias", scheme: SchemeMEM1,
			traj: answerTraj("New York City"), gold: [][]string{{"NYC", "New York", "York"}},
			em: 0, f1: 0.8,
			per:     []ObjectiveScore{{Answer: "New York City", F1: 0.8}},
			answers: []string{"New York City"},
		},
		{
			// Sets: {new,york} = {new,york} → F1 1 but not EM.
			name: "set F1 ignores repeats", scheme: SchemeMEM1,
			traj: answerTraj("new new york"), gold: [][]string{{"New York"}},
			em: 0, f1: 1,
			per:     []ObjectiveScore{{Answer: "new new york", F1: 1}},
			answers: []string{"new new york"},
		},
		{
			// Bags: common 2 of 3 predicted, 2 of 2 gold: P=2/3, R=1 → 0.8.
			name: "bag F1 counts repeats", scheme: SchemeSQuAD,
			traj: answerTraj("new new york"), gold: [][]string{{"New York"}},
			em: 0, f1: 0.8,
			per:     []ObjectiveScore{{Answer: "new new york", F1: 0.8}},
			answers: []string{"new new york"},
		},
		{
			name: "count mismatch", scheme: SchemeMEM1,
			traj: answerTraj("Paris; London"), gold: [][]string{{"Paris"}, {"London"}, {"Rome"}},
			per:     []ObjectiveScore{{Answer: "Paris"}, {Answer: "London"}, {}},
			answers: []string{"Paris", "London"},
			flags:   Score{CountMismatch: true},
		},
		{
			name: "trailing separator is an extra answer", scheme: SchemeMEM1,
			traj: answerTraj("Paris;"), gold: [][]string{{"Paris"}},
			per:     []ObjectiveScore{{Answer: "Paris"}},
			answers: []string{"Paris", ""},
			flags:   Score{CountMismatch: true},
		},
		{
			name: "summed with one wrong", scheme: SchemeMEM1,
			traj: answerTraj("1889 ; Gustave Eiffel ; blue"), gold: [][]string{{"1889"}, {"Eiffel"}, {"red"}},
			// 1 + 0 + 0 EM; F1 1 + 2/3 + 0.
			em: 1, f1: 1 + 2.0/3,
			per:     []ObjectiveScore{{Answer: "1889", EM: 1, F1: 1}, {Answer: "Gustave Eiffel", F1: 2.0 / 3}, {Answer: "blue"}},
			answers: []string{"1889", "Gustave Eiffel", "blue"},
		},
		{
			name: "last answer wins", scheme: SchemeMEM1,
			traj: "<answer>London</answer> then <answer>Paris</answer>", gold: [][]string{{"Paris"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "Paris", EM: 1, F1: 1}},
			answers: []string{"Paris"},
		},
		{
			name: "unbalanced counts", scheme: SchemeMEM1,
			traj: "<answer>Paris</answer><answer>Paris", gold: [][]string{{"Paris"}},
			flags: Score{Unbalanced: true}, per: make([]ObjectiveScore, 1),
		},
		{
			name: "unbalanced order", scheme: SchemeMEM1,
			traj: "<answer>Paris</answer></answer><answer>", gold: [][]string{{"Paris"}},
			flags: Score{Unbalanced: true}, per: make([]ObjectiveScore, 1),
		},
		{
			// Balanced by eval.py's rules; the lazy match takes "<answer>Paris".
			name: "nested answer tags", scheme: SchemeMEM1,
			traj: "<answer><answer>Paris</answer></answer>", gold: [][]string{{"answer Paris"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "<answer>Paris", EM: 1, F1: 1}},
			answers: []string{"<answer>Paris"},
		},
		{
			name: "no answer", scheme: SchemeMEM1,
			traj: "<think>x</think><search>q</search>", gold: [][]string{{"Paris"}},
			flags: Score{NoAnswer: true}, per: make([]ObjectiveScore, 1),
		},
		{
			name: "empty answer is one empty part", scheme: SchemeMEM1,
			traj: "<answer> </answer>", gold: [][]string{{"Paris"}},
			per:     []ObjectiveScore{{}},
			answers: []string{""},
		},
		{
			name: "tags match case-insensitively", scheme: SchemeMEM1,
			traj: "<ANSWER>Paris</Answer>", gold: [][]string{{"paris"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "Paris", EM: 1, F1: 1}},
			answers: []string{"Paris"},
		},
		{
			name: "only text after the last assistant marker", scheme: SchemeMEM1,
			traj: "<answer>London<|im_start|>assistant\n<answer>Paris</answer>", gold: [][]string{{"Paris"}},
			em: 1, f1: 1,
			per:     []ObjectiveScore{{Answer: "Paris", EM: 1, F1: 1}},
			answers: []string{"Paris"},
		},
		{
			// "café — paris" vs "café paris": the dash is not ASCII punctuation and
			// stays a token: P=2/3, R=1 → 0.8.
			name: "unicode", scheme: SchemeMEM1,
			traj: answerTraj("ZÜRICH; Café — Paris"), gold: [][]string{{"zürich"}, {"Café Paris"}},
			em: 1, f1: 1.8,
			per:     []ObjectiveScore{{Answer: "ZÜRICH", EM: 1, F1: 1}, {Answer: "Café — Paris", F1: 0.8}},
			answers: []string{"ZÜRICH", "Café — Paris"},
		},
		{
			name: "no gold aliases", scheme: SchemeMEM1,
			traj: answerTraj("Paris"), gold: [][]string{{}},
			per:     []ObjectiveScore{{Answer: "Paris"}},
			answers: []string{"Paris"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ScoreTrajectory(c.scheme, c.traj, c.gold)
			require.NoError(t, err)
			assert.Equal(t, c.scheme, s.Scheme)
			assert.InDelta(t, c.em, s.EM, 1e-12, "EM")
			assert.InDelta(t, c.f1, s.F1, 1e-12, "F1")
			assert.Equal(t, c.answers, s.Answers)
			assert.Equal(t, c.flags.CountMismatch, s.CountMismatch, "CountMismatch")
			assert.Equal(t, c.flags.NoAnswer, s.NoAnswer, "NoAnswer")
			assert.Equal(t, c.flags.Unbalanced, s.Unbalanced, "Unbalanced")
			require.Len(t, s.PerObjective, len(c.per))
			for i := range c.per {
				assert.Equal(t, c.per[i].Answer, s.PerObjective[i].Answer)
				assert.InDelta(t, c.per[i].EM, s.PerObjective[i].EM, 1e-12)
				assert.InDelta(t, c.per[i].F1, s.PerObjective[i].F1, 1e-12)
			}
		})
	}
}

func TestScoreTrajectoryUnknownScheme(t *testing.T) {
	_, err := ScoreTrajectory("rouge", answerTraj("x"), [][]string{{"x"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rouge")
}

func TestScoreWithCustomAnswerTag(t *testing.T) {
	tags := Tags{Think: "t", Search: "s", Information: "i", Answer: "final"}
	s, err := ScoreTrajectoryWith(SchemeMEM1, "<answer>no</answer><final>Paris</final>", [][]string{{"Paris"}}, tags)
	require.NoError(t, err)
	assert.InDelta(t, 1.0, s.EM, 1e-12)
	a, ok := FinalAnswerWith(SchemeMEM1, "<final> Paris </final>", tags)
	assert.True(t, ok)
	assert.Equal(t, "Paris", a)
}

func TestFinalAnswer(t *testing.T) {
	a, ok := FinalAnswer(SchemeMEM1, "<answer>a</answer><answer> b; c </answer>")
	assert.True(t, ok)
	assert.Equal(t, "b; c", a)

	for _, traj := range []string{"", "<answer>a", "no tags"} {
		_, ok = FinalAnswer(SchemeMEM1, traj)
		assert.False(t, ok, traj)
	}
	_, ok = FinalAnswer("nope", "<answer>a</answer>")
	assert.False(t, ok)
}

func TestTrajectoryText(t *testing.T) {
	turns := []Turn{{Response: "a", Information: "ignored"}, {Response: "b"}, {Response: "c"}}
	assert.Equal(t, "abc", TrajectoryText(turns))
	assert.Equal(t, "", TrajectoryText(nil))
}

func TestSchemes(t *testing.T) {
	for _, s := range Schemes() {
		_, err := ScoreTrajectory(s, "", [][]string{{"x"}})
		assert.NoError(t, err, s)
	}
	assert.ElementsMatch(t, []string{SchemeMEM1, SchemeSQuAD}, Schemes())
}
