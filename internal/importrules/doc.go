// Package importrules holds no code: its test checks the layout's import rules
// (see the README's Development section) with `go list`:
//   - core imports nothing from os, net, database or Fyne (the domain touches no
//     files, network or database);
//   - views never depends on fyne.io/fyne/v2/app (screens are built on any
//     fyne.App, the test driver's included);
//   - experiments (and its subpackages) and assets depend on no Fyne package, so
//     headless runs, exports and figures do not link the GUI toolkit.
package importrules
