package storage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTemplatesSaveOnceAndLookUp(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)

	none, err := s.Templates(ctx)
	require.NoError(t, err)
	assert.Empty(t, none)

	st, err := s.SaveTemplate(ctx, " mem1-train ", "Answer: {questions}\n", "/x/mem1-prompt.txt")
	require.NoError(t, err)
	assert.Equal(t, "mem1-train", st.Name)
	// Python: hashlib.sha256(b"Answer: {questions}\n").hexdigest()
	assert.Equal(t, "ce31f2b551175c06f2473459d90fca2bad922484e4bd2dbdf24fb0510c285a04", st.SHA256)
	assert.Len(t, st.SHA256, 64)
	assert.NotEqual(t, TemplateHash("Answer: {questions}"), st.SHA256, "one byte changes the hash")

	again, err := s.SaveTemplate(ctx, "mem1-train", "Answer: {questions}\n", "elsewhere")
	require.NoError(t, err, "the same text under the same name is a no-op")
	assert.Equal(t, st.SHA256, again.SHA256)

	_, err = s.SaveTemplate(ctx, "mem1-train", "Other: {questions}\n", "")
	require.ErrorIs(t, err, ErrDuplicate)
	_, err = s.SaveTemplate(ctx, "", "x {questions}", "")
	require.Error(t, err)
	_, err = s.SaveTemplate(ctx, "bad", "Q: {questions} \xff\xfe", "")
	require.ErrorContains(t, err, "UTF-8")

	got, err := s.Template(ctx, "mem1-train")
	require.NoError(t, err)
	assert.Equal(t, StoredTemplate{Name: "mem1-train", Text: "Answer: {questions}\n", SHA256: st.SHA256, Source: "/x/mem1-prompt.txt"}, got,
		"the first import is kept")
	_, err = s.Template(ctx, "nope")
	require.ErrorIs(t, err, ErrNotFound)

	_, err = s.SaveTemplate(ctx, "a-first", "A {questions}", "")
	require.NoError(t, err)
	all, err := s.Templates(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, []string{"a-first", "mem1-train"}, []string{all[0].Name, all[1].Name})
}
