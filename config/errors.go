package config

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinels wrapped by the Err of a FieldError, for errors.Is.
var (
	// ErrUnknownKey: the key is not part of the schema (a typo, or an option
	// of another version).
	ErrUnknownKey = errors.New("unknown key")
	// ErrDuplicateKey: the same key appears twice in one mapping.
	ErrDuplicateKey = errors.New("duplicate key")
	// ErrUndefinedVariable: a ${VAR} without a default names a variable
	// that is not set.
	ErrUndefinedVariable = errors.New("undefined environment variable")
	// ErrType: the value has the wrong shape or type for the key.
	ErrType = errors.New("wrong type")
	// ErrInvalid: the value is well-typed but not acceptable.
	ErrInvalid = errors.New("invalid value")
	// ErrNoAPIKey: no API key was configured anywhere (see
	// Server.RequireAPIKey).
	ErrNoAPIKey = errors.New("no API key")
)

// FieldError is one problem with one configuration key. Parse, Load and
// Validate return every problem they find, joined with errors.Join; use
// FieldErrors to list them.
type FieldError struct {
	File  string // the config file's name as given to Load/Parse ("" if none)
	Path  string // key path, such as "sources[1].csv.delimiter"
	Line  int    // 1-based line in File, 0 when the value did not come from the file
	Value any    // the offending value, nil when unknown or secret
	Err   error  // what is wrong; wraps one of the sentinels above where one fits
}

// Error formats the problem as "file:line: path: message", dropping the parts
// that are unknown.
func (e *FieldError) Error() string {
	var s string
	switch {
	case e.File != "" && e.Line > 0:
		s = e.File + ":" + strconv.Itoa(e.Line) + ": "
	case e.File != "":
		s = e.File + ": "
	case e.Line > 0:
		s = "line " + strconv.Itoa(e.Line) + ": "
	}
	if e.Path != "" {
		s += e.Path + ": "
	}
	if e.Err == nil {
		return s + "invalid"
	}
	return s + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors lists the FieldErrors in err, which may be a single one or
// an errors.Join of them (as returned by Load, Parse and Validate). Other
// errors are skipped.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) {
			out = append(out, fe)
		}
	}
	walk(err)
	return out
}

// invalidf builds an error wrapping ErrInvalid whose message is just the
// formatted text (the sentinel's own text is not repeated).
func invalidf(format string, args ...any) error {
	return &sentinelError{sentinel: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// typef is invalidf for ErrType.
func typef(format string, args ...any) error {
	return &sentinelError{sentinel: ErrType, msg: fmt.Sprintf(format, args...)}
}

// sentinelError carries a custom message while matching a sentinel with
// errors.Is.
type sentinelError struct {
	sentinel error
	msg      string
}

func (e *sentinelError) Error() string        { return e.msg }
func (e *sentinelError) Is(target error) bool { return target == e.sentinel }
