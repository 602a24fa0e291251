// Package csvsafe writes CSV that a spreadsheet opens as data, never as
// formulas: a customer's note such as `=HYPERLINK(…)` or `@SUM(…)` would
// otherwise run when the operator opens an export.
package csvsafe

import (
	"encoding/csv"
	"io"
	"strconv"
)

// Writer is csv.Writer with every cell passed through Cell.
type Writer struct {
	w   *csv.Writer
	buf []string
}

// NewWriter writes CSV to out.
func NewWriter(out io.Writer) *Writer { return &Writer{w: csv.NewWriter(out)} }

// Write writes one record, each cell defused.
func (w *Writer) Write(record []string) error {
	w.buf = w.buf[:0]
	for _, c := range record {
		w.buf = append(w.buf, Cell(c))
	}
	return w.w.Write(w.buf)
}

// Flush writes what is buffered.
func (w *Writer) Flush() { w.w.Flush() }

// Error reports an error of a Write or Flush.
func (w *Writer) Error() error { return w.w.Error() }

// Cell returns c with a leading ' when a spreadsheet would read it as a
// formula: it starts with =, +, - or @ (or a tab or carriage return, which
// some spreadsheets skip before looking). A number stays as it is (a
// negative margin is a number, not a formula).
func Cell(c string) string {
	if c == "" {
		return c
	}
	switch c[0] {
	case '=', '+', '-', '@', '\t', '\r':
		if _, err := strconv.ParseFloat(c, 64); err == nil && c[0] != '\t' && c[0] != '\r' {
			return c
		}
		return "'" + c
	}
	return c
}
