package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// RequeueFailed puts experiment expID's failed rollouts back in the queue
// (their error cleared, their stored turns kept, so a resume continues each
// from its last stored turn) and returns how many. Done rollouts are not
// touched.
func (s *Store) RequeueFailed(ctx context.Context, expID int64) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE rollouts SET status = ?, error = '', finished_at = NULL
		WHERE experiment_id = ? AND status = ?`, StatusQueued, expID, StatusFailed)
	if err != nil {
		return 0, fmt.Errorf("storage: requeue failed rollouts of experiment %d: %w", expID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// withoutUserinfo is a profile's JSON with the user:password@ removed from its
// "url" field; any other JSON (or one without userinfo) is returned as is.
func withoutUserinfo(profileJSON string) string {
	var m map[string]any
	if !strings.Contains(profileJSON, "@") || json.Unmarshal([]byte(profileJSON), &m) != nil {
		return profileJSON
	}
	raw, ok := m["url"].(string)
	if !ok {
		return profileJSON
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return profileJSON
	}
	u.User = nil
	m["url"] = u.String()
	b, err := json.Marshal(m)
	if err != nil {
		return profileJSON
	}
	return string(b)
}

// MaxErrorText bounds the error text stored per attempt or rollout (8 KiB):
// whatever a server sends, the store keeps a summary.
const MaxErrorText = 8 << 10

// clipErrorText cuts s to MaxErrorText bytes on a rune boundary, noting how
// many bytes were dropped.
func clipErrorText(s string) string {
	if len(s) <= MaxErrorText {
		return s
	}
	cut := MaxErrorText - 64
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s… [%d bytes dropped]", s[:cut], len(s)-cut)
}
