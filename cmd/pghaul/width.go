package main

import (
	"io"
	"os"
	"strconv"

	"golang.org/x/term"
)

// defaultWidth is the width of tables written to a pipe or file, where no
// terminal says how wide it is.
const defaultWidth = 100

// outputWidth is how wide the tables written to w may be: the terminal's
// width when w is one, else COLUMNS, else 100.
func outputWidth(w io.Writer, env Env) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if v, ok := env("COLUMNS"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
	}
	return defaultWidth
}
