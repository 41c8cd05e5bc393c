package views

import (
	"context"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// tmplStore is the control fake plus stored templates.
type tmplStore struct {
	*ctlStore
	templates []storage.StoredTemplate
}

func (s *tmplStore) Templates(context.Context) ([]storage.StoredTemplate, error) {
	return s.templates, nil
}

func (s *tmplStore) Template(_ context.Context, name string) (storage.StoredTemplate, error) {
	for _, t := range s.templates {
		if t.Name == name {
			return t, nil
		}
	}
	return storage.StoredTemplate{}, storage.ErrNotFound
}

func TestNewExperimentStoredTemplateAndTruncatePreset(t *testing.T) {
	text := "Answer: {questions}\n"
	st := &tmplStore{ctlStore: newCtlStore(), templates: []storage.StoredTemplate{
		{Name: experiments.TruncateTemplateName, Text: text, SHA256: storage.TemplateHash(text)}}}
	r := newCtlRunner(nil)
	u, _ := newTestUI(t, st, r)
	require.NoError(t, u.Show(ScreenNewRun))
	u.wait()
	p := u.run
	act(u, func() {
		assert.Equal(t, []string{noStoredTemplate, experiments.TruncateTemplateName}, p.storedTemplate.Options)
		assert.Equal(t, noStoredTemplate, p.storedTemplate.Selected)
		p.policies.SetSelected([]string{"full", "mem1"})
		p.mode.SetSelected("chat")
		test.Tap(p.truncateBt)
	})
	cfg, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1"}, cfg.PolicyList())
	assert.Equal(t, experiments.ModeCompletions, cfg.Mode)
	assert.Equal(t, experiments.TruncateModel, cfg.Model)
	assert.Equal(t, experiments.TruncateTemplateName, cfg.TemplateName)
	assert.Empty(t, cfg.Template)
	assert.Equal(t, 0.95, cfg.TopP)
	assert.Contains(t, p.status.Text, "Truncate preset")
	act(u, func() { test.Tap(p.previewBt) })
	u.wait()
	assert.Empty(t, p.errors.Text)
	assert.Contains(t, p.prompt.Text, "<|im_start|>user\nAnswer: ", "the preview renders the stored template")

	// Running resolves the stored template; the runner gets its text and hash.
	act(u, func() { test.Tap(p.runBt) })
	started := <-r.started
	assert.Equal(t, experiments.TruncateTemplateName, started.TemplateName)
	act(u, func() { test.Tap(p.cancelBt) })
	u.wait()

	// Both a file and a stored template: refused.
	act(u, func() { p.template.SetText("/tmp/x.txt") })
	_, err = p.config()
	require.ErrorContains(t, err, "not both")

	// Without the template stored the preset leaves it out and says how to import it.
	st2 := &tmplStore{ctlStore: newCtlStore()}
	u2, _ := newTestUI(t, st2, newCtlRunner(nil))
	require.NoError(t, u2.Show(ScreenNewRun))
	u2.wait()
	act(u2, func() { test.Tap(u2.run.truncateBt) })
	cfg2, err := u2.run.config()
	require.NoError(t, err)
	assert.Empty(t, cfg2.TemplateName)
	assert.Contains(t, u2.run.status.Text, "template import")
}

// Trace shows eval.py's score beside ours when they differ, and the raw
// generation in the request view when stripping changed it.
func TestTraceShowsEvalPyScoreAndRawResponse(t *testing.T) {
	st := newFakeStore()
	d := st.details[11]
	d.Score.EvalPy = &core.EvalPyScore{EM: 0, F1: 0.25}
	d.Turns[0].RawResponse = "  " + d.Turns[0].Response + "\n"
	st.details[11] = d
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	assert.Contains(t, u.trace.totals.Text, "MEM1 eval.py reads: EM 0 · F1 0.25")
	assert.True(t, hasText(w.Canvas(), "MEM1 eval.py reads: EM 0 · F1 0.25"))
	assert.Contains(t, u.trace.requestParams(d.Turns[0]), "raw response as the server sent it")
	assert.NotContains(t, u.trace.requestParams(d.Turns[1]), "raw response")
}
