package deploy

import (
	"errors"
	"fmt"
	"strings"

	suggest_ "github.com/kaylee-gitops/kaylee/internal/suggest"
)

// FieldError is a problem with one field of one unit file. Its message is
// printed as FILE:LINE: FIELD: MESSAGE, the form editors and CI logs link.
type FieldError struct {
	File  string // file name as given to Decode; may be empty
	Line  int    // 1-based; 0 when unknown
	Field string // path of the field, such as apps[1].image; empty for the document
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "<input>"
	}
	b.WriteString(file)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// FieldErrors returns every *FieldError joined in err (see errors.Join), or
// err itself wrapped as one FieldError without position when it holds none.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
			return
		}
		out = append(out, &FieldError{Msg: e.Error()})
	}
	walk(err)
	return out
}

// suggest returns the candidate closest to s when it is a likely typo.
func suggest(s string, candidates []string) string { return suggest_.Closest(s, candidates) }
