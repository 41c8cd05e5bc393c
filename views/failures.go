package views

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mem1lab/mem1lab/storage"
)

// scoreText formats a score (EM, F1) of a rollout or a mean over done
// rollouts: "n/a" when there is nothing to score (a failed or unfinished
// rollout, a group with no done rollout), never a misleading 0.00. format is
// a fmt verb such as "%.2f".
func scoreText(format string, v float64, scored bool) string {
	if !scored {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

// errorKind names the kind of a stored rollout error for counting: the
// endpoint refused or was unreachable, a timeout, an HTTP error status, a
// cancel, else the error's first clause (up to its first colon).
func errorKind(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "connection refused"), strings.Contains(m, "no such host"),
		strings.Contains(m, "network is unreachable"), strings.Contains(m, "connection reset"):
		return "endpoint unreachable"
	case strings.Contains(m, "deadline exceeded"), strings.Contains(m, "timeout"), strings.Contains(m, "timed out"):
		return "timeout"
	case strings.Contains(m, "status code"), strings.Contains(m, "http status"), strings.Contains(m, "error, status"):
		return "HTTP error"
	case strings.Contains(m, "context canceled"), strings.Contains(m, "cancel"):
		return "cancelled"
	}
	first := strings.TrimSpace(firstLine(msg))
	if i := strings.IndexByte(first, ':'); i > 0 {
		first = first[:i]
	}
	if first == "" {
		return "unknown error"
	}
	return first
}

// failureSummary explains the failed rollouts among rows: "3 of 4 rollouts
// failed: endpoint unreachable ×3. First: <message>" ("" when none failed).
// Kinds are listed most frequent first.
func failureSummary(rows []storage.RolloutRow) string {
	counts := map[string]int{}
	var kinds []string
	first, failed := "", 0
	for _, r := range rows {
		if r.Status != storage.StatusFailed {
			continue
		}
		failed++
		k := errorKind(r.Error)
		if counts[k] == 0 {
			kinds = append(kinds, k)
		}
		counts[k]++
		if first == "" && r.Error != "" {
			first = firstLine(r.Error)
		}
	}
	if failed == 0 {
		return ""
	}
	slices.SortStableFunc(kinds, func(a, b string) int { return counts[b] - counts[a] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s ×%d", k, counts[k])
	}
	s := fmt.Sprintf("%d of %s failed: %s.", failed, plural(len(rows), "rollout", "rollouts"), strings.Join(parts, ", "))
	if first != "" {
		s += " First: " + first
	}
	return s
}
