package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/mem1lab/mem1lab/core"
)

// Sort keys of RolloutQuery.Sort: the rollout browser's columns.
const (
	SortID         = "id"
	SortExperiment = "experiment"
	SortTask       = "task"
	SortPolicy     = "policy"
	SortModel      = "model"
	SortDataset    = "dataset"
	SortObjectives = "objectives"
	SortEM         = "em"
	SortF1         = "f1"
	SortCorrect    = "correct"
	SortPeakTokens = "peak_tokens"
	// SortPaperPeakTokens orders by MEM1 eval.py's peak (rollouts without one first).
	SortPaperPeakTokens = "paper_peak_tokens"
	SortTurns           = "turns"
	SortTime            = "time"
	SortStatus          = "status"
	SortError           = "error"
)

// sortColumns maps a sort key to its SQL expression.
var sortColumns = map[string]string{
	SortID: "r.id", SortExperiment: "e.name", SortTask: "t.key", SortPolicy: "r.policy", SortModel: "r.model",
	SortDataset: "t.dataset", SortObjectives: "t.objectives", SortEM: "r.em", SortF1: "r.f1",
	SortCorrect: "r.em", SortPeakTokens: "r.peak_tokens", SortPaperPeakTokens: "r.paper_peak_tokens", SortTurns: "r.turns", SortTime: "r.seconds",
	SortStatus: "r.status", SortError: "r.error",
}

// DefaultPageSize is the page size BrowseRollouts uses when RolloutQuery.Limit is 0.
const DefaultPageSize = 200

// RolloutQuery selects, orders and pages rollouts for the browser. Zero fields
// select everything.
type RolloutQuery struct {
	ExperimentID int64  // 0 = every experiment
	Policy       string // exact; "" = any
	Model        string
	Dataset      string
	Status       string
	// Text is searched as words (each word a prefix, all words required) over the
	// task's questions and every turn's internal state, query and answer (FTS5,
	// porter stemming). A rollout matches when its questions, or any one of its
	// turns, hold every word. Text without words selects everything.
	Text string
	// WrongOnly keeps finished rollouts whose EM is below their objective count.
	WrongOnly bool
	// CountMismatch keeps rollouts whose answer count differed from their objectives.
	CountMismatch bool
	// HitMaxTurns keeps rollouts that used up their turn budget.
	HitMaxTurns bool
	// Failed keeps rollouts whose status is failed.
	Failed bool
	// Sort is one of the Sort keys ("" = SortID); unknown keys are an error.
	Sort string
	Desc bool
	// Offset skips that many rows; Limit is the page size (0 = DefaultPageSize,
	// negative = no limit).
	Offset, Limit int
}

// BrowseRow is one row of the rollout browser.
type BrowseRow struct {
	RolloutRow
	Experiment    string // experiment name
	HitMaxTurns   bool
	CountMismatch bool
	// SubCallTokens and SubCallSeconds are what the memory policy's sub-calls
	// cost (0 for other policies).
	SubCallTokens  int
	SubCallSeconds float64
}

// Correct is how many objectives were answered exactly: MEM1's EM is the sum of
// 0/1 marks over objectives, so it is the EM itself.
func (r BrowseRow) Correct() int { return int(r.EM + 0.5) }

// RolloutPage is one page of BrowseRollouts: the rows and how many rollouts the
// query selects in all.
type RolloutPage struct {
	Rows  []BrowseRow
	Total int
}

// matchExpr turns free text into an FTS5 expression requiring every word as a
// prefix; "" when the text has no words. Words are letters and digits only (see
// queryTerms), so no FTS5 syntax can reach the expression.
func matchExpr(text string) string {
	var terms []string
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !isWordChar(r) }) {
		if !seen[f] {
			seen[f] = true
			terms = append(terms, `"`+f+`"*`)
		}
		if len(terms) == MaxQueryTerms {
			break
		}
	}
	return strings.Join(terms, " ")
}

// isWordChar is what queryTerms keeps inside a word.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// where builds the WHERE clause of q and its arguments.
func (q RolloutQuery) where() (string, []any) {
	var conds []string
	var args []any
	add := func(c string, a ...any) {
		conds = append(conds, c)
		args = append(args, a...)
	}
	if q.ExperimentID != 0 {
		add("r.experiment_id = ?", q.ExperimentID)
	}
	if q.Policy != "" {
		add("r.policy = ?", q.Policy)
	}
	if q.Model != "" {
		add("r.model = ?", q.Model)
	}
	if q.Dataset != "" {
		add("t.dataset = ?", q.Dataset)
	}
	if q.Status != "" {
		add("r.status = ?", q.Status)
	}
	if m := matchExpr(q.Text); m != "" {
		// The unary + keeps SQLite from looking each match up through an index
		// (a MULTI-INDEX OR, then a sort): scanning rollouts in the page's order
		// against the two match lists is faster and stops at the page's end.
		add(`(+r.task_id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)
			OR +r.id IN (SELECT tu.rollout_id FROM turns tu
				WHERE tu.id IN (SELECT rowid FROM turns_fts WHERE turns_fts MATCH ?)))`, m, m)
	}
	if q.WrongOnly {
		add("r.status = 'done' AND r.em < t.objectives")
	}
	if q.CountMismatch {
		add(`instr(r.score_json, '"count_mismatch":true') > 0`)
	}
	if q.HitMaxTurns {
		add("r.hit_max_turns <> 0")
	}
	if q.Failed {
		add("r.status = 'failed'")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const browseFrom = ` FROM rollouts r JOIN tasks t ON t.id = r.task_id JOIN experiments e ON e.id = r.experiment_id`

// BrowseRollouts returns one page of the rollouts q selects, in q's order (ties
// by id in the same direction), and the number selected in all. Errors: an
// unknown sort key, or the store's.
func (s *Store) BrowseRollouts(ctx context.Context, q RolloutQuery) (RolloutPage, error) {
	key := q.Sort
	if key == "" {
		key = SortID
	}
	col, ok := sortColumns[key]
	if !ok {
		return RolloutPage{}, fmt.Errorf("storage: browse rollouts: unknown sort key %q", q.Sort)
	}
	if matchExpr(q.Text) != "" {
		// Turns committed but not yet in the trace index are indexed first.
		if err := s.syncTurnIndex(ctx); err != nil {
			return RolloutPage{}, err
		}
	}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	offset := max(q.Offset, 0)
	where, args := q.where()
	var page RolloutPage
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*)`+browseFrom+where, args...).Scan(&page.Total); err != nil {
		return RolloutPage{}, fmt.Errorf("storage: browse rollouts: %w", err)
	}
	order := " ORDER BY " + col + dir
	if col != "r.id" {
		order += ", r.id" + dir
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+rolloutCols+`, e.name, r.hit_max_turns,
		instr(r.score_json, '"count_mismatch":true') > 0, `+subCallTokensExpr+`, `+subCallSecondsExpr+browseFrom+where+order+` LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	if err != nil {
		return RolloutPage{}, fmt.Errorf("storage: browse rollouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b BrowseRow
		rr, err := scanRollout(rows, &b.Experiment, &b.HitMaxTurns, &b.CountMismatch, &b.SubCallTokens, &b.SubCallSeconds)
		if err != nil {
			return RolloutPage{}, fmt.Errorf("storage: browse rollouts: %w", err)
		}
		b.RolloutRow = rr
		page.Rows = append(page.Rows, b)
	}
	if err := rows.Err(); err != nil {
		return RolloutPage{}, fmt.Errorf("storage: browse rollouts: %w", err)
	}
	return page, nil
}

// RolloutFacets are the distinct values the browser's filters offer, sorted.
type RolloutFacets struct {
	Policies, Models, Datasets, Statuses []string
}

// Facets lists the distinct policies, models, datasets and statuses of the
// stored rollouts.
func (s *Store) Facets(ctx context.Context) (RolloutFacets, error) {
	var f RolloutFacets
	for _, c := range []struct {
		q   string
		dst *[]string
	}{
		{distinctValues("rollouts", "policy"), &f.Policies},
		{distinctValues("rollouts", "model"), &f.Models},
		{distinctValues("tasks", "dataset"), &f.Datasets},
		{distinctValues("rollouts", "status"), &f.Statuses},
	} {
		rows, err := s.r.QueryContext(ctx, c.q)
		if err != nil {
			return RolloutFacets{}, fmt.Errorf("storage: facets: %w", err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return RolloutFacets{}, fmt.Errorf("storage: facets: %w", err)
			}
			*c.dst = append(*c.dst, v)
		}
		if err := rows.Close(); err != nil {
			return RolloutFacets{}, fmt.Errorf("storage: facets: %w", err)
		}
	}
	return f, nil
}

// distinctValues lists the distinct values of an indexed column in order by
// hopping through its index (one lookup per value, not a scan of every row).
func distinctValues(table, col string) string {
	return `WITH RECURSIVE v(x) AS (
		SELECT MIN(` + col + `) FROM ` + table + `
		UNION ALL
		SELECT (SELECT MIN(` + col + `) FROM ` + table + ` WHERE ` + col + ` > v.x) FROM v WHERE v.x IS NOT NULL
	) SELECT x FROM v WHERE x IS NOT NULL`
}

// SameTaskRollouts lists, by id, every rollout (the given one included) on the
// same task as rollout id: a task with the same key and the same objectives,
// in any experiment. An unknown rollout wraps ErrNotFound.
func (s *Store) SameTaskRollouts(ctx context.Context, id int64) ([]RolloutRow, error) {
	var key, taskJSON string
	err := s.r.QueryRowContext(ctx, `SELECT t.key, t.task_json FROM rollouts r JOIN tasks t ON t.id = r.task_id WHERE r.id = ?`, id).
		Scan(&key, &taskJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: same-task rollouts of %d: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, rolloutSelect+` WHERE t.key = ? AND t.task_json = ? ORDER BY r.id`, key, taskJSON)
	if err != nil {
		return nil, fmt.Errorf("storage: same-task rollouts of %d: %w", id, err)
	}
	defer rows.Close()
	var out []RolloutRow
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: same-task rollouts of %d: %w", id, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RolloutPair is one task run in both experiments of a pair: A's rollout and
// B's, each with its decoded score (zero while unfinished).
type RolloutPair struct {
	TaskKey        string
	Task           core.Task
	A, B           RolloutRow
	ScoreA, ScoreB core.Score
}

// PairRollouts pairs the rollouts of experiments a and b on the same tasks (same
// key and objectives), ordered by task key then rollout ids. A task with several
// rollouts in one experiment gives one pair per combination.
func (s *Store) PairRollouts(ctx context.Context, a, b int64) ([]RolloutPair, error) {
	cols := func(r, t string) string {
		return strings.NewReplacer("r.", r+".", "t.", t+".").Replace(rolloutCols)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+cols("ra", "ta")+`, ra.score_json, ta.task_json, `+cols("rb", "tb")+`, rb.score_json
		FROM rollouts ra JOIN tasks ta ON ta.id = ra.task_id
		JOIN tasks tb ON tb.experiment_id = ? AND tb.key = ta.key AND tb.task_json = ta.task_json
		JOIN rollouts rb ON rb.task_id = tb.id
		WHERE ra.experiment_id = ?
		ORDER BY ta.key, ra.id, rb.id`, b, a)
	if err != nil {
		return nil, fmt.Errorf("storage: pair rollouts of %d and %d: %w", a, b, err)
	}
	defer rows.Close()
	var out []RolloutPair
	for rows.Next() {
		var p RolloutPair
		var sa, sb, tj string
		xa, xb := rolloutScan{r: &p.A}, rolloutScan{r: &p.B}
		a := append(xa.dst(), &sa, &tj)
		b := append(xb.dst(), &sb)
		if err := rows.Scan(append(a, b...)...); err != nil {
			return nil, fmt.Errorf("storage: pair rollouts: %w", err)
		}
		xa.done()
		xb.done()
		p.TaskKey = p.A.TaskKey
		if err := json.Unmarshal([]byte(tj), &p.Task); err != nil {
			return nil, fmt.Errorf("storage: pair rollouts: task %s: %w", p.TaskKey, err)
		}
		for _, sc := range []struct {
			src string
			dst *core.Score
		}{{sa, &p.ScoreA}, {sb, &p.ScoreB}} {
			if sc.src == "" {
				continue
			}
			if err := json.Unmarshal([]byte(sc.src), sc.dst); err != nil {
				return nil, fmt.Errorf("storage: pair rollouts: score of task %s: %w", p.TaskKey, err)
			}
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
