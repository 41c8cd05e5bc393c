package views

import (
	"net/http/httptest"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// TestNewExperimentRetrieverPicker: the picker selects bm25 or a /retrieve
// server, Test sends one search to a real server, and the choice reaches the
// config (and its hash).
func TestNewExperimentRetrieverPicker(t *testing.T) {
	rs := experiments.NewRetrieveServer([]core.Passage{
		{ID: "1", Title: "Nineteen Eighty-Four", Text: "Nineteen Eighty-Four is a novel by George Orwell."},
		{ID: "2", Title: "Animal Farm", Text: "A novella."},
	})
	srv := httptest.NewServer(rs)
	defer srv.Close()

	u, _ := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait()
	p := u.run
	assert.Equal(t, experiments.RetrieverBM25, p.retrKind.Selected)
	assert.True(t, p.retrTestBt.Disabled(), "bm25 is the store's index: nothing to test")
	cfg, err := p.config()
	require.NoError(t, err)
	assert.Nil(t, cfg.Retriever)
	bm25Hash := cfg.Hash()

	act(u, func() { p.retrKind.SetSelected(experiments.RetrieverHTTP); test.Tap(p.runBt) })
	assert.Contains(t, p.errors.Text, "Retriever: give the /retrieve server's URL")

	act(u, func() { p.retrURL.SetText(srv.URL + "/retrieve"); test.Tap(p.retrTestBt) })
	u.wait()
	assert.Contains(t, p.retrResult.Text, `OK: 1 passages in`)
	assert.Contains(t, p.retrResult.Text, `first "Nineteen Eighty-Four"`)
	assert.Equal(t, 1, rs.Requests())
	cfg, err = p.config()
	require.NoError(t, err)
	assert.Equal(t, &experiments.RetrieverConfig{Kind: experiments.RetrieverHTTP, URL: srv.URL + "/retrieve"}, cfg.Retriever)
	assert.NotEqual(t, bm25Hash, cfg.Hash())

	// A failing server says why.
	act(u, func() { p.retrURL.SetText(srv.URL + "/nowhere"); test.Tap(p.retrTestBt) })
	u.wait()
	assert.Contains(t, p.retrResult.Text, "Retriever failed:")
	assert.Contains(t, p.retrResult.Text, "404")

	// A loaded config shows its retriever and keeps the keys the form hides.
	loaded := cfg
	loaded.Retriever = &experiments.RetrieverConfig{Kind: experiments.RetrieverHTTP, URL: "http://10.0.0.9:8013/retrieve", TopK: 5, Timeout: 9}
	act(u, func() { p.setConfig(loaded) })
	assert.Equal(t, "http://10.0.0.9:8013/retrieve", p.retrURL.Text)
	back, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, loaded.Retriever, back.Retriever)
	act(u, func() { p.retrKind.SetSelected(experiments.RetrieverBM25) })
	back, err = p.config()
	require.NoError(t, err)
	assert.Equal(t, &experiments.RetrieverConfig{Kind: experiments.RetrieverBM25, TopK: 5}, back.Retriever)
}

// TestTraceShowsRetrievalLatency: the turn line gives the search's share of the
// turn's time when the turn searched.
func TestTraceShowsRetrievalLatency(t *testing.T) {
	st := newFakeStore()
	d := st.details[11]
	turns := append([]core.Turn(nil), d.Turns...)
	turns[0].RetrievalLatency = 250 * time.Millisecond
	d.Turns = turns
	st.details[11] = d
	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	assert.Contains(t, u.trace.turnInfo.Text, "· 0.9 s (retrieval 0.25 s)")
	assert.Contains(t, u.trace.params.String(), "retrieval 250ms")
	act(u, func() { u.trace.slider.SetValue(3) })
	assert.NotContains(t, u.trace.turnInfo.Text, "retrieval", "an answer turn did not search")
}

// Issue 14: open-domain web QA from the GUI. The picker offers every retriever
// kind; "serper" takes a Serper-compatible address and the name of the env
// var holding its key (never the key), and Test searches through it.
func TestNewExperimentWebSearchRetriever(t *testing.T) {
	rs := experiments.NewRetrieveServer([]core.Passage{
		{ID: "1", Title: "Nineteen Eighty-Four", Text: "Nineteen Eighty-Four is a novel by George Orwell."},
	})
	serper := httptest.NewServer(&experiments.SerperServer{Env: rs, Key: "sk-serper-test"})
	defer serper.Close()
	t.Setenv("MEM1LAB_SERPER_TEST_KEY", "sk-serper-test")

	u, _ := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait()
	p := u.run
	act(u, func() {
		for _, k := range []string{experiments.RetrieverBM25, experiments.RetrieverBM25Tuned, experiments.RetrieverBleve,
			experiments.RetrieverHTTP, experiments.RetrieverSerper} {
			assert.Contains(t, p.retrKind.Options, k)
		}
		assert.False(t, p.retrKeyEnv.Visible(), "the key field is for web search only")
		p.retrKind.SetSelected(experiments.RetrieverBleve)
	})
	cfg, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, &experiments.RetrieverConfig{Kind: experiments.RetrieverBleve}, cfg.Retriever)

	act(u, func() {
		p.retrKind.SetSelected(experiments.RetrieverSerper)
		assert.True(t, p.retrKeyEnv.Visible())
		p.retrURL.SetText(serper.URL)
		p.retrKeyEnv.SetText("not a name")
		test.Tap(p.runBt)
		assert.Contains(t, p.errors.Text, "is not an environment variable name")
		p.retrKeyEnv.SetText("MEM1LAB_SERPER_TEST_KEY")
		test.Tap(p.retrTestBt)
	})
	u.wait()
	act(u, func() {
		assert.Contains(t, p.retrResult.Text, `OK: 1 passages in`)
		assert.Contains(t, p.retrResult.Text, `first "Nineteen Eighty-Four"`)
	})
	cfg, err = p.config()
	require.NoError(t, err)
	require.NotNil(t, cfg.Retriever)
	assert.Equal(t, experiments.RetrieverSerper, cfg.Retriever.Kind)
	assert.Equal(t, serper.URL+"/search", cfg.Retriever.URL)
	assert.Equal(t, "MEM1LAB_SERPER_TEST_KEY", cfg.Retriever.APIKeyEnv)
	b, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "sk-serper-test", "the key never enters the config")

	// A wrong key fails the test search with the server's reason.
	t.Setenv("MEM1LAB_SERPER_TEST_KEY", "sk-wrong")
	act(u, func() { test.Tap(p.retrTestBt) })
	u.wait()
	act(u, func() { assert.Contains(t, p.retrResult.Text, "Retriever failed:") })

	// A loaded web-search config comes back as it was.
	act(u, func() { p.setConfig(cfg) })
	back, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, cfg.Retriever, back.Retriever)
}
