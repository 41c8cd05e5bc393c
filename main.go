// Command mem1lab is a desktop workbench for MEM1-style long-horizon agents with
// consolidated memory. With no arguments it opens the GUI; `mem1lab help` lists the
// headless subcommands.
package main

import (
	"os"

	"github.com/mem1lab/mem1lab/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:]))
}
