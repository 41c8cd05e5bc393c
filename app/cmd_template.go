package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// cmdTemplate imports a prompt template file into the store once (`template
// import FILE [--name NAME]`; the name defaults to the file name without its
// extension) or lists the stored ones (`template list`: name, sha256, source).
// A file that is not valid UTF-8 or has no {questions} slot is refused; with
// --family webshop the slot it must have is {instruction} (core.InstructionSlot).
func (c *CLI) cmdTemplate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("template: want `import FILE [--name NAME]` or `list`")
	}
	sub, rest := args[0], args[1:]
	fs := c.flags("template " + sub)
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	name := fs.String("name", "", "name to keep the template under (default: the file name without its extension)")
	family := fs.String("family", core.FamilyQA, "the task family the template is for: qa (needs a {questions} slot) or webshop (needs {instruction})")
	// Accept FILE before or after the flags.
	var file string
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	switch sub {
	case "import":
		if file == "" {
			return errors.New("template import: want a FILE")
		}
		var tmpl core.Template
		var err error
		switch *family {
		case core.FamilyQA, "":
			tmpl, err = experiments.LoadTemplate(file)
		case core.FamilyWebShop:
			tmpl, err = loadWebShopTemplate(file)
		default:
			err = fmt.Errorf("template import: --family %q: want %s or %s", *family, core.FamilyQA, core.FamilyWebShop)
		}
		if err != nil {
			return err
		}
		if *name == "" {
			*name = tmpl.Name
		}
		st, err := storage.Open(*db)
		if err != nil {
			return err
		}
		defer st.Close()
		saved, err := st.SaveTemplate(ctx, *name, tmpl.Text, file)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "template %q: sha256 %s (use: mem1lab run --template-name %s)\n", saved.Name, saved.SHA256, saved.Name)
		return nil
	case "list":
		st, err := openExisting(*db)
		if err != nil {
			return err
		}
		defer st.Close()
		ts, err := st.Templates(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "name\tsha256\tsource")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.SHA256, t.Source)
		}
		return tw.Flush()
	default:
		return fmt.Errorf("template: unknown subcommand %q (want import or list)", sub)
	}
}

// loadWebShopTemplate reads a WebShop prompt template file: valid UTF-8 (the
// line of the first bad byte otherwise) with an {instruction} slot; its name is
// the file name without its extension.
func loadWebShopTemplate(path string) (core.Template, error) {
	text, err := readTemplate(path)
	if err != nil {
		return core.Template{}, err
	}
	if line, bad := core.InvalidUTF8Line(text); bad {
		return core.Template{}, fmt.Errorf("%s:%d: template is not valid UTF-8, which a request cannot carry byte for byte", path, line)
	}
	base := filepath.Base(path)
	return core.Template{Name: strings.TrimSuffix(base, filepath.Ext(base)), Text: text}, nil
}
