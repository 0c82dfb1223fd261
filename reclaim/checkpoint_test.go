package reclaim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reclaim/report"
)

func validCheckpoint() Checkpoint {
	return Checkpoint{
		Version:       checkpointVersion,
		Input:         InputIdentity{Path: "/waves/a.csv", Size: 100, SHA256: strings.Repeat("ab", 32), Rows: 10},
		Target:        "https://graph.microsoft.com/beta",
		DoneThrough:   3,
		DoneAfter:     []int{5, 7},
		OutcomesBytes: int64(len(report.OutcomesHeader)) + 500,
		Counts:        report.Counts{Revoked: 4, Invalid: 1},
	}
}

func TestCheckpointSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	cp := validCheckpoint()
	cp.DoneAfter = []int{7, 5}
	if err := cp.save(path); err != nil {
		t.Fatal(err)
	}
	got, err := loadCheckpoint(path)
	if err != nil {
		t.Fatalf("loadCheckpoint: %v", err)
	}
	if got.DoneThrough != 3 || len(got.DoneAfter) != 2 || got.DoneAfter[0] != 5 || got.Counts != cp.Counts || got.Input != cp.Input {
		t.Errorf("loaded %+v, want %+v with done_after sorted", got, cp)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after save, want only the checkpoint", len(entries))
	}
}

func TestLoadCheckpointMissing(t *testing.T) {
	_, err := loadCheckpoint(filepath.Join(t.TempDir(), "none.json"))
	if !errors.Is(err, errNoCheckpoint) {
		t.Errorf("loadCheckpoint(missing) = %v, want errNoCheckpoint", err)
	}
}

func TestLoadCheckpointDamaged(t *testing.T) {
	tests := map[string]func(*Checkpoint){
		"other version":           func(cp *Checkpoint) { cp.Version = 2 },
		"no hash":                 func(cp *Checkpoint) { cp.Input.SHA256 = "" },
		"done past the input":     func(cp *Checkpoint) { cp.DoneThrough = 11 },
		"done after out of order": func(cp *Checkpoint) { cp.DoneAfter = []int{7, 5} },
		"done after not after":    func(cp *Checkpoint) { cp.DoneAfter = []int{3, 5} },
		"done after past input":   func(cp *Checkpoint) { cp.DoneAfter = []int{5, 11}; cp.Counts.Revoked = 4 },
		"counts disagree":         func(cp *Checkpoint) { cp.Counts.Revoked = 9 },
		"outcomes too short":      func(cp *Checkpoint) { cp.OutcomesBytes = 3 },
		"complete with pending":   func(cp *Checkpoint) { cp.Complete = true },
	}
	for name, damage := range tests {
		t.Run(name, func(t *testing.T) {
			cp := validCheckpoint()
			damage(&cp)
			if problem := cp.check(); problem == "" {
				t.Errorf("check() found nothing wrong in %+v", cp)
			}
		})
	}

	path := filepath.Join(t.TempDir(), "checkpoint.json")
	for _, content := range []string{"", "{", "[]", `{"version": 1}`, "\x00\x01"} {
		os.WriteFile(path, []byte(content), 0o644)
		_, err := loadCheckpoint(path)
		var usage *UsageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "--restart") {
			t.Errorf("loadCheckpoint(%q) = %v, want a UsageError about a damaged checkpoint naming --restart", content, err)
		}
	}
}

func TestCheckpointValidPasses(t *testing.T) {
	cp := validCheckpoint()
	if problem := cp.check(); problem != "" {
		t.Errorf("check() = %q, want no problem", problem)
	}
}
