package experiments

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// LoadTemplate reads a template file (RunConfig.Template, --template) and
// parses it with core.ParseTemplate. Its name is the file name without the
// extension. Errors name the path: an unreadable file, "path:line: not valid
// UTF-8" for a file a JSON request could not carry byte for byte, or a missing
// core.QuestionsSlot.
func LoadTemplate(path string) (core.Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return core.Template{}, fmt.Errorf("load template: %w", err)
	}
	if line, bad := core.InvalidUTF8Line(string(data)); bad {
		return core.Template{}, fmt.Errorf("%s:%d: template is not valid UTF-8, which a request cannot carry byte for byte", path, line)
	}
	base := filepath.Base(path)
	name := strings.TrimSuffix(base, filepath.Ext(base))
	t, err := core.ParseTemplate(name, string(data))
	if err != nil {
		return core.Template{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
