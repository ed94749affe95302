package config

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file, located by file, line and key
// path.
type Problem struct {
	// File is the file the problem was found in, as given to Load or Parse.
	File string
	// Line is the 1-based line of the offending key or value; 0 when the problem is
	// about something missing from the file as a whole.
	Line int
	// Path is the key path, for example "providers[0].pools[1].labels[0]". Problems
	// that concern a whole provider may carry the provider's name in parentheses
	// after the path.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error formats the problem as "FILE:LINE: PATH: MSG", leaving out empty parts.
func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError lists every problem found in a configuration. Load, Parse,
// Validate, ValidateDrivers and the DecodeDriver methods return it.
type ValidationError struct {
	// Problems in file order.
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors, so errors.As finds a Problem.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Problems returns the problems carried by err: those of a *ValidationError or a
// Problem found with errors.As, or nil when err carries none.
func Problems(err error) []Problem {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return slices.Clone(ve.Problems)
	}
	var p Problem
	if errors.As(err, &p) {
		return []Problem{p}
	}
	return nil
}

// problemsError returns nil for no problems, else a *ValidationError holding them
// sorted by file and line (stable, so problems on one line keep their order).
func problemsError(ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	sorted := slices.Clone(ps)
	slices.SortStableFunc(sorted, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return &ValidationError{Problems: sorted}
}
