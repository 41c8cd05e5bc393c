package views

import "fmt"

// plural is "1 experiment" or "3 experiments": n with the word that agrees.
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
