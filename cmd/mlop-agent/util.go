package main

import (
	"io"
	"log/slog"
	"os"

	"golang.org/x/term"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// isTerminal reports whether w is a terminal (progress lines are then
// rewritten in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
