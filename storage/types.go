package storage

import (
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// Question is one imported question (a row of unified/questions.jsonl or of a raw
// source file). Seq is its 0-based position within its dataset in import order,
// which MEM1's consecutive composition follows.
type Question struct {
	ID                string
	Dataset           string
	Seq               int
	Question          string
	Golden            []string
	GoldPassageIDs    []string
	ContextPassageIDs []string
	Type              string
	Level             string
	SourceFile        string
}

// Objective turns the question into a core.Objective.
func (q Question) Objective() core.Objective {
	return core.Objective{QuestionID: q.ID, Question: q.Question, Gold: q.Golden, GoldPassageIDs: q.GoldPassageIDs}
}

// DatasetInfo counts what one dataset holds in the store.
type DatasetInfo struct {
	Name      string
	Questions int
	Passages  int // corpus passages tagged with this dataset
}

// ImportStats reports what an import added.
type ImportStats struct {
	Questions int
	Passages  int
	Files     []string
	Elapsed   time.Duration
}

// Experiment statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusDone      = "done"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// ExperimentRow is one experiment with its rollout counts and running means over
// finished rollouts.
type ExperimentRow struct {
	ID         int64
	Name       string
	CreatedAt  time.Time
	ConfigJSON string
	ConfigHash string
	Status     string
	Rollouts   int
	Done       int
	Failed     int
	Running    int
	MeanEM     float64
	MeanF1     float64
}

// RolloutRow is one rollout (trajectory) as listed in tables.
type RolloutRow struct {
	ID           int64
	ExperimentID int64
	TaskKey      string
	Dataset      string
	Policy       string
	Model        string
	Objectives   int
	Status       string
	EM           float64
	F1           float64
	PeakTokens   int
	TotalTokens  int
	Turns        int
	Seconds      float64
	Error        string
	// Paper holds MEM1 eval.py's figures (o200k counts; nil pointers are
	// eval.py's None); nil until computed for this rollout.
	Paper *core.PaperMetrics
	// RequestPeakTokens is the largest request of the rollout as served
	// (prompt + completion of one call), from TokenSource.
	RequestPeakTokens int
	// TokenSource is where RequestPeakTokens comes from (core.TokenSource*:
	// server-usage, server-tokenize or estimate); "" until finished.
	TokenSource string
}

// PaperPeak returns the paper's peak tokens and true, or 0 and false when
// there is none (not computed, or eval.py's None).
func (r RolloutRow) PaperPeak() (int, bool) {
	if r.Paper == nil || r.Paper.PeakTokens == nil {
		return 0, false
	}
	return *r.Paper.PeakTokens, true
}

// RolloutDetail is a rollout with its task, every stored turn (by index) and its
// score (per-objective marks included; zero Score while unfinished).
type RolloutDetail struct {
	RolloutRow
	Task  core.Task
	Turns []core.Turn
	Score core.Score
	// Prompt is the task prompt the rollout's model calls carried, as stored
	// when it started (SetRolloutPrompt; ImportedRollout.Prompt); "" for
	// rollouts stored before prompts were kept.
	Prompt string
}

// RolloutResult is what the runner writes when a rollout ends.
type RolloutResult struct {
	Status      string // StatusDone or StatusFailed (or StatusCancelled)
	Score       core.Score
	Answer      string
	PeakTokens  int
	TotalTokens int
	Turns       int
	Seconds     float64
	HitMaxTurns bool
	Error       string
	// Paper is eval.py's figures of the rollout (nil: not computed, stored NULL).
	Paper *core.PaperMetrics
	// RequestPeakTokens and TokenSource: the served-model peak and its source.
	RequestPeakTokens int
	TokenSource       string
}

// PaperBackfill is a finished rollout whose paper figures were never
// computed (a store from before they existed), with what computing them needs.
type PaperBackfill struct {
	ID         int64
	Policy     string
	ConfigJSON string // the experiment's config
	Task       core.Task
}
