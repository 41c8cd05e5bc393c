package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// StoredTemplate is a named prompt template kept in the store. SHA256 is the
// lower-case hex SHA-256 of Text's bytes (TemplateHash); Source says where it
// was imported from (a file path, or "" when not known).
type StoredTemplate struct {
	Name   string
	Text   string
	SHA256 string
	Source string
}

// TemplateHash is the lower-case hex SHA-256 of text's bytes: how an
// experiment config records which template it ran.
func TemplateHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// SaveTemplate stores text under name. Importing the same text under the same
// name again is a no-op; a different text under a name already taken is an
// error wrapping ErrDuplicate (nothing is changed). Errors also for an empty
// name, or text that is not valid UTF-8. The caller checks the template's slots
// (core.ParseTemplate).
func (s *Store) SaveTemplate(ctx context.Context, name, text, source string) (StoredTemplate, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return StoredTemplate{}, errors.New("storage: save template: empty name")
	}
	if !utf8.ValidString(text) {
		return StoredTemplate{}, fmt.Errorf("storage: save template %q: text is not valid UTF-8", name)
	}
	st := StoredTemplate{Name: name, Text: text, SHA256: TemplateHash(text), Source: source}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var have string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM templates WHERE name = ?`, name).Scan(&have)
		switch {
		case err == nil && have == st.SHA256:
			return nil
		case err == nil:
			return fmt.Errorf("storage: save template %q: a different template (sha256 %.12s…) has that name: %w", name, have, ErrDuplicate)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO templates(name, text, sha256, source, imported_at) VALUES (?, ?, ?, ?, ?)`,
			name, text, st.SHA256, source, now())
		return err
	})
	if err != nil {
		if errors.Is(err, ErrDuplicate) || strings.HasPrefix(err.Error(), "storage:") {
			return StoredTemplate{}, err
		}
		return StoredTemplate{}, fmt.Errorf("storage: save template %q: %w", name, err)
	}
	return st, nil
}

// Template returns the stored template with that name, or an error wrapping
// ErrNotFound.
func (s *Store) Template(ctx context.Context, name string) (StoredTemplate, error) {
	var st StoredTemplate
	err := s.r.QueryRowContext(ctx, `SELECT name, text, sha256, source FROM templates WHERE name = ?`, name).
		Scan(&st.Name, &st.Text, &st.SHA256, &st.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredTemplate{}, fmt.Errorf("storage: template %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return StoredTemplate{}, fmt.Errorf("storage: template %q: %w", name, err)
	}
	return st, nil
}

// Templates returns every stored template ordered by name.
func (s *Store) Templates(ctx context.Context) ([]StoredTemplate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, text, sha256, source FROM templates ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("storage: templates: %w", err)
	}
	defer rows.Close()
	var out []StoredTemplate
	for rows.Next() {
		var st StoredTemplate
		if err := rows.Scan(&st.Name, &st.Text, &st.SHA256, &st.Source); err != nil {
			return nil, fmt.Errorf("storage: templates: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}
