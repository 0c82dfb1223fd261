package graphsim

import "testing"

func TestParseFormNames(t *testing.T) {
	for _, form := range []Form{FormCast, FormUncast, FormBoth, FormNone} {
		got, err := ParseForm(form.String())
		if err != nil || got != form {
			t.Errorf("ParseForm(%q) = %v, %v, want %v", form.String(), got, err, form)
		}
	}
	if _, err := ParseForm("cast-only"); err == nil {
		t.Errorf("ParseForm(cast-only) succeeded, want an error")
	}
}

func TestParseRetryAfterStyleNames(t *testing.T) {
	for _, style := range []RetryAfterStyle{RetryAfterSeconds, RetryAfterDecimal, RetryAfterDate, RetryAfterList, RetryAfterNone, RetryAfterRotate} {
		got, err := ParseRetryAfterStyle(string(style))
		if err != nil || got != style {
			t.Errorf("ParseRetryAfterStyle(%q) = %q, %v, want %q", style, got, err, style)
		}
	}
	if got, err := ParseRetryAfterStyle("DECIMAL"); err != nil || got != RetryAfterDecimal {
		t.Errorf("ParseRetryAfterStyle(DECIMAL) = %q, %v, want decimal", got, err)
	}
	if _, err := ParseRetryAfterStyle("minutes"); err == nil {
		t.Errorf("ParseRetryAfterStyle(minutes) succeeded, want an error")
	}
}
