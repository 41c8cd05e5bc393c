package experiments

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// ackStore reports on stdout every turn write the store acknowledged, after
// its commit returned and before the runner hears of it.
type ackStore struct{ *storage.Store }

func (s ackStore) ApplyWrites(ctx context.Context, ws []storage.Write) []storage.WriteOutcome {
	outs := s.Store.ApplyWrites(ctx, ws)
	for i, w := range ws {
		if w.Turn != nil && outs[i].Err == nil {
			fmt.Fprintf(os.Stdout, "ack %d %d\n", w.RolloutID, w.Turn.Index) // unbuffered: one write(2) each
		}
	}
	return outs
}

// The helper process of TestAckedTurnsSurviveSIGKILL: it runs an experiment
// against the stub at $MEM1LAB_ACK_URL on the store at $MEM1LAB_ACK_DB until
// it is killed.
func TestAckHelperProcess(t *testing.T) {
	db, url := os.Getenv("MEM1LAB_ACK_DB"), os.Getenv("MEM1LAB_ACK_URL")
	if db == "" {
		t.Skip("helper process of TestAckedTurnsSurviveSIGKILL")
	}
	st, err := storage.Open(db)
	require.NoError(t, err)
	cfg := DefaultRunConfig()
	cfg.Name = "ack"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = url, "stub", 1, 200, 16, 6
	_, err = (&Runner{Store: ackStore{st}, Env: fixedEnv{}}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
}

// A turn the store acknowledged (its group commit returned) is in the store
// after the process is killed with SIGKILL, with the WAL never checkpointed by
// the writer and the trace index batched: every acknowledged turn is read
// back, and a trace search finds every rollout with a stored turn.
func TestAckedTurnsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a subprocess")
	}
	hotpot := requireBundleFile(t, filepath.Join("raw", "hotpotqa_dev_distractor.rpt-test.jsonl"))
	db := filepath.Join(t.TempDir(), "lab.db")
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = st.ImportHotpotDistractor(ctx, hotpot)
	require.NoError(t, err)
	srv := stubServer(2 * time.Millisecond)
	defer srv.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestAckHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MEM1LAB_ACK_DB="+db, "MEM1LAB_ACK_URL="+srv.URL+"/v1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	type key struct {
		rollout int64
		idx     int
	}
	var acked []key
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var k key
		if n, _ := fmt.Sscanf(sc.Text(), "ack %d %d", &k.rollout, &k.idx); n == 2 {
			acked = append(acked, k)
		}
		if len(acked) == 300 {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			break
		}
	}
	for sc.Scan() { // acknowledgements written before the kill landed
		var k key
		if n, _ := fmt.Sscanf(sc.Text(), "ack %d %d", &k.rollout, &k.idx); n == 2 {
			acked = append(acked, k)
		}
	}
	_ = cmd.Wait()
	require.GreaterOrEqual(t, len(acked), 300, "the helper acknowledged turns before it was killed")

	after, err := storage.Open(db) // a fresh open replays the log and catches the index up
	require.NoError(t, err)
	defer after.Close()
	withTurns := map[int64]bool{}
	for _, k := range acked {
		turns, err := after.Turns(ctx, k.rollout)
		require.NoError(t, err)
		require.Greater(t, len(turns), k.idx, "rollout %d turn %d was acknowledged", k.rollout, k.idx)
		assert.Equal(t, k.idx, turns[k.idx].Index)
		withTurns[k.rollout] = true
	}
	exps, err := after.Experiments(ctx)
	require.NoError(t, err)
	require.Len(t, exps, 1)
	page, err := after.BrowseRollouts(ctx, storage.RolloutQuery{ExperimentID: exps[0].ID, Text: "looking", Limit: 1000})
	require.NoError(t, err)
	found := map[int64]bool{}
	for _, r := range page.Rows {
		found[r.ID] = true
	}
	for id := range withTurns {
		assert.True(t, found[id], "rollout %d's turns are in the trace index", id)
	}
	require.NoError(t, after.IntegrityCheck(ctx))
}
