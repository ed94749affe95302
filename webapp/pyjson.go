package webapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
)

// pyJSON rewrites a JSON value the way Python's json.dumps writes it with its defaults,
// as upstream's web app does: ", " between items, ": " after keys, keys in their stored
// order, and every non-ASCII character escaped (\uXXXX).
func pyJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b bytes.Buffer
	// Per open container: whether it is an object, and how many tokens it has had.
	type frame struct {
		object bool
		n      int
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("reformatting JSON: %w", err)
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			b.WriteByte(byte(d))
		} else {
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				switch {
				case top.object && top.n%2 == 1:
					b.WriteString(": ")
				case top.n > 0:
					b.WriteString(", ")
				}
				top.n++
			}
			switch v := tok.(type) {
			case json.Delim:
				b.WriteByte(byte(v))
				stack = append(stack, frame{object: v == '{'})
			case string:
				writePyString(&b, v)
			case json.Number:
				b.WriteString(v.String())
			case bool:
				fmt.Fprint(&b, v)
			case nil:
				b.WriteString("null")
			}
		}
		if len(stack) == 0 {
			if dec.More() {
				return nil, fmt.Errorf("reformatting JSON: more than one value")
			}
			return b.Bytes(), nil
		}
	}
}

// writePyString writes s as Python's json.dumps does with ensure_ascii.
func writePyString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r > 0x7e && r <= 0xffff):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
